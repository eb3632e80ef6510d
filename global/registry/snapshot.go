package registry

import (
	"maps"
	"slices"

	"github.com/livecell/livecell/internal/config"
)

// Roles every cell has. Any other role is a service name from cells.yaml
// (accounts, store, …).
const (
	RoleGateway = "gateway" // the cell's TCP gateway
	RoleAPI     = "api"     // the cell's HTTP API, serving every service by default
)

// Source says where an instance came from.
type Source string

const (
	SourceFile   Source = "cells.yaml" // as written in cells.yaml; health unknown
	SourceConsul Source = "consul"     // a passing instance in Consul
)

// Instance is one reachable endpoint of one role of one cell.
type Instance struct {
	ID      string `json:"id"`      // Consul service id, or "<cell>/<role>" for cells.yaml
	Cell    string `json:"cell"`    // cell id
	Service string `json:"service"` // gateway, api or a service name
	Addr    string `json:"addr"`    // host:port
	Source  Source `json:"source"`
}

// Snapshot is an immutable view of the registry: the cells of cells.yaml
// and, when Consul is in use, the healthy instances it last reported.
type Snapshot struct {
	version uint64
	cells   *config.Cells
	// consul holds, per role, the passing instances by cell. A role absent
	// from the map has had no answer from Consul yet (or Consul is not in
	// use): cells.yaml stands in for it.
	consul map[string]map[string][]Instance
}

// Version increases with every change the registry publishes.
func (s *Snapshot) Version() uint64 { return s.version }

// File returns cells.yaml as loaded (do not modify it).
func (s *Snapshot) File() *config.Cells { return s.cells }

// Discovered reports whether Consul has answered for role.
func (s *Snapshot) Discovered(role string) bool {
	_, ok := s.consul[role]
	return ok
}

// Instances returns where role of cell can be reached, best first:
//
//   - Consul's passing instances, once Consul has answered for role. An
//     empty answer means none is healthy, except for a service without a
//     services entry in cells.yaml, which then falls back to the api role
//     (the API serves every service that has no listener of its own).
//   - Otherwise cells.yaml: gateway, api, or the service's services entry
//     (its api when it has none).
//
// It returns nil for a cell that is not in cells.yaml: Consul can report
// instances, but only cells.yaml says which cells exist.
func (s *Snapshot) Instances(cell, role string) []Instance {
	c, ok := s.cells.Cell(cell)
	if !ok {
		return nil
	}
	_, separate := c.Services[role]
	if byCell, ok := s.consul[role]; ok {
		if found := byCell[cell]; len(found) > 0 || separate || role == RoleGateway || role == RoleAPI {
			return slices.Clone(found)
		}
	}
	switch {
	case role == RoleGateway:
		return fileInstance(c.ID, role, c.Gateway)
	case role == RoleAPI:
		return fileInstance(c.ID, role, c.API)
	case separate:
		return fileInstance(c.ID, role, c.Services[role])
	}
	return s.Instances(cell, RoleAPI)
}

func fileInstance(cell, role, addr string) []Instance {
	if addr == "" {
		return nil
	}
	return []Instance{{ID: cell + "/" + role, Cell: cell, Service: role, Addr: addr, Source: SourceFile}}
}

// Endpoint returns the first of Instances(cell, role).
func (s *Snapshot) Endpoint(cell, role string) (Instance, bool) {
	in := s.Instances(cell, role)
	if len(in) == 0 {
		return Instance{}, false
	}
	return in[0], true
}

// Resolved returns a copy of cells.yaml in which each cell's gateway, api
// and services entries are replaced by the first discovered instance, ready
// for consumers that take a *config.Cells (router.SetCells). A role with no
// healthy instance keeps its cells.yaml address: the router's own probe
// then finds the cell down, and a cell is never dropped from the list,
// since its players' data still lives there. Without Consul it is
// cells.yaml itself.
func (s *Snapshot) Resolved() *config.Cells {
	if len(s.consul) == 0 {
		return s.cells
	}
	out := *s.cells
	out.Cells = slices.Clone(s.cells.Cells)
	for i := range out.Cells {
		c := &out.Cells[i]
		if in, ok := s.Endpoint(c.ID, RoleGateway); ok {
			c.Gateway = in.Addr
		}
		if in, ok := s.Endpoint(c.ID, RoleAPI); ok {
			c.API = in.Addr
		}
		if len(c.Services) > 0 {
			c.Services = maps.Clone(c.Services)
			for name := range c.Services {
				if in, ok := s.Endpoint(c.ID, name); ok {
					c.Services[name] = in.Addr
				}
			}
		}
	}
	return &out
}
