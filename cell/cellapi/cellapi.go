// Package cellapi holds the wire types of a cell's own HTTP endpoints, the
// ones read from outside the cell by the global router and the control
// plane. It has no logic and imports nothing of the cell, so those readers
// depend on the contract only, never on the cell's implementation.
package cellapi

// StatusPath is where a cell's HTTP API answers GET with a Status.
const StatusPath = "/v1/status"

// Status is a cell's self-report. The router probes it to decide health and
// load; a cell that is up but cannot serve (for example its database is
// unreachable) reports Healthy=false rather than failing the request, so the
// probe can tell "down" from "sick".
type Status struct {
	Cell     string `json:"cell"`     // cell id from cells.yaml
	Region   string `json:"region"`   // cloud region
	State    string `json:"state"`    // active, draining or disabled, as the cell sees it
	Healthy  bool   `json:"healthy"`  // the cell can take sessions now
	Sessions int    `json:"sessions"` // current sessions on the cell's gateway(s)
	Capacity int    `json:"capacity"` // maximum sessions
	Version  string `json:"version"`  // build version the cell runs
	Gateway  string `json:"gateway"`  // address the gateway is bound to
}
