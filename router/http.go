package router

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// maxQueryLen bounds the raw query of /v1/resolve: a UUID, a hint and a
// full RTT report (placement.MaxRTTs entries of a 64-byte key and a
// 9-byte value) fit, and nothing bigger is worth parsing.
const maxQueryLen = 4096

// CellHealth is one cell as the router sees it, served by GET /v1/cells.
type CellHealth struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	State  string `json:"state"` // what routing applies: cells.yaml's, or the operator's when stricter
	// ConfigState is the state in cells.yaml; OperatorState the one an
	// operator set at run time (draining), absent when none; ReportedState
	// the one the cell itself reports, which shows whether it has applied
	// a drain.
	ConfigState   string   `json:"config_state"`
	OperatorState string   `json:"operator_state,omitempty"`
	ReportedState string   `json:"reported_state,omitempty"`
	Gateway       string   `json:"gateway"`
	API           string   `json:"api"`
	Capacity      int      `json:"capacity"`
	Failover      []string `json:"failover,omitempty"`
	Up            bool     `json:"up"`
	Sessions      int      `json:"sessions"`
	Load          float64  `json:"load"` // sessions / capacity
	Version       string   `json:"version,omitempty"`
	Failures      int      `json:"consecutive_failures"`
	LastError     string   `json:"last_error,omitempty"`
	LastProbe     string   `json:"last_probe,omitempty"` // RFC 3339; empty before the first probe
}

// CellsResponse is the body of GET /v1/cells.
type CellsResponse struct {
	Version int          `json:"version"` // of cells.yaml
	Cells   []CellHealth `json:"cells"`
}

// Cells returns every cell with its health and load, in cells.yaml order.
func (r *Router) Cells() CellsResponse {
	v := r.view.Load()
	out := CellsResponse{Version: v.version, Cells: make([]CellHealth, len(v.cells))}
	for i := range v.cells {
		c := &v.cells[i]
		ch := CellHealth{
			ID: c.ID, Region: c.Region, State: string(c.State), Gateway: c.Gateway, API: c.API,
			ConfigState: string(c.configState), OperatorState: string(c.operator), ReportedState: c.reported,
			Capacity: c.Capacity, Failover: slices.Clone(c.Failover), Up: c.up, Sessions: c.sessions,
			Version: c.version, Failures: c.fails, LastError: c.lastErr,
		}
		if c.Capacity > 0 {
			ch.Load = float64(c.sessions) / float64(c.Capacity)
		}
		if !c.lastAt.IsZero() {
			ch.LastProbe = c.lastAt.UTC().Format(time.RFC3339Nano)
		}
		out.Cells[i] = ch
	}
	return out
}

// Handler serves the router's HTTP API:
//
//	GET /v1/resolve?player=<uuid>&region_hint=<cell id or region>&rtt=<key:ms,...>
//	GET /v1/cells
//
// It is a bare http.ServeMux so that telemetry.InstrumentHTTP, wrapped
// around it by the process, labels metrics with the matched route.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/resolve", r.serveResolve)
	mux.HandleFunc("/v1/resolve", methodNotAllowed)
	mux.HandleFunc("GET /v1/cells", r.serveCells)
	mux.HandleFunc("/v1/cells", methodNotAllowed)
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

func (r *Router) serveResolve(w http.ResponseWriter, req *http.Request) {
	rr, err := parseResolveQuery(req.URL.RawQuery)
	if err != nil {
		r.m.observe("", err, 0)
		httpapi.WriteError(w, req, r.log, err)
		return
	}
	res, err := r.Resolve(req.Context(), rr)
	if err != nil {
		httpapi.WriteError(w, req, r.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// parseResolveQuery is strict: a client that misspells a parameter learns
// so at once instead of silently getting a different placement.
func parseResolveQuery(raw string) (ResolveRequest, error) {
	var rr ResolveRequest
	if len(raw) > maxQueryLen {
		return rr, apierr.New(apierr.BadRequest, "query string longer than %d bytes", maxQueryLen)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return rr, apierr.New(apierr.BadRequest, "malformed query string")
	}
	for k, vs := range q {
		if len(vs) > 1 {
			return rr, apierr.New(apierr.BadRequest, "query parameter %q given more than once", k)
		}
		switch k {
		case "player":
			rr.PlayerID = vs[0]
		case "region_hint":
			rr.RegionHint = vs[0]
		case "rtt":
			if rr.RTTs, err = placement.ParseRTTs(vs[0]); err != nil {
				return rr, err
			}
		default:
			return rr, apierr.New(apierr.BadRequest, "unknown query parameter %q (want player, region_hint, rtt)", k)
		}
	}
	return rr, nil
}

func (r *Router) serveCells(w http.ResponseWriter, req *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, r.Cells())
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	httpapi.WriteError(w, r, nil, apierr.New(apierr.MethodNotAllowed, "use GET"))
}
