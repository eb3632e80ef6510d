package config

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong (or, as a warning, questionable) in a
// cells.yaml, at a line of the file.
type Problem struct {
	Line int    // 1-based; 0 when unknown (a Cells built in code, an empty file)
	Msg  string // what is wrong, naming the cell and key
}

// String formats p as "line 8: msg".
func (p Problem) String() string { return p.In("") }

// In formats p as "file:8: msg", the form editors and CI annotate, or as
// "line 8: msg" when file is empty.
func (p Problem) In(file string) string {
	switch {
	case p.Line > 0 && file != "":
		return fmt.Sprintf("%s:%d: %s", file, p.Line, p.Msg)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	case file != "":
		return file + ": " + p.Msg
	}
	return p.Msg
}

// ValidationError lists every problem found in a cells.yaml, in line order.
type ValidationError struct {
	File     string // set by Load; empty for Parse
	Problems []Problem
	Warnings []Problem // found along the way; not why the file was rejected
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("config: invalid cells.yaml")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	fmt.Fprintf(&b, " (%s):", plural(len(e.Problems), "problem"))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.In(e.File))
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// sortProblems orders problems by line, file-wide ones (line 0) first, and
// drops exact repeats (a node shared through a YAML alias is checked once
// per use).
func sortProblems(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Limits of the schema, in one place: docs/cells.md quotes them.
const (
	maxIDLen      = 32 // cell, edge and service names; they label metrics and DNS
	maxCapacity   = 10_000_000
	maxRegionLen  = 63
	maxHostLength = 253
)

// Validate checks the rules of cells.yaml and reports every problem in one
// *ValidationError. It fills defaults on the way: db_region from region,
// state active. Questionable but valid choices are left in Warnings.
func (c *Cells) Validate() error {
	v := validator{c: c}
	v.run()
	c.warnings = sortProblems(v.warns)
	if len(v.probs) > 0 {
		return &ValidationError{Problems: sortProblems(v.probs), Warnings: c.warnings}
	}
	return nil
}

type validator struct {
	c            *Cells
	probs, warns []Problem
}

// line returns the line of path, or of its nearest ancestor that has one
// (a missing key is reported at its cell).
func (v *validator) line(path string) int {
	for path != "" {
		if l, ok := v.c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) bad(path string) bool { return v.c.bad[path] }

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warn(path, format string, args ...any) {
	v.warns = append(v.warns, Problem{Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) run() {
	c := v.c
	if c.Version != 1 && !v.bad("version") {
		v.add("version", "version: got %d, want 1", c.Version)
	}
	eps := endpoints{v: v}
	if c.Router.Listen != "" {
		if err := checkHostPort(c.Router.Listen); err != nil {
			v.add("router.listen", "router.listen %q: %v", c.Router.Listen, err)
		} else {
			eps.use("tcp", c.Router.Listen, "", "router.listen", "router.listen")
		}
	}
	if len(c.Cells) == 0 {
		if !v.bad("cells") {
			v.add("cells", "cells: at least one cell is required")
		}
		return
	}

	firstID := map[string]int{} // id → line of its first cell
	edgeIDs := map[string]string{}
	active := 0
	for i := range c.Cells {
		v.cell(i, firstID, edgeIDs, &eps)
		if c.Cells[i].State == StateActive {
			active++
		}
	}
	for i := range c.Cells {
		v.failoverList(i, firstID)
	}
	if active == 0 {
		v.add("cells", "no active cell: at least one cell must have state active, or no new player can be placed")
		return // every failover then leads nowhere; saying so per cell is noise
	}
	v.failoverReach()
}

func (v *validator) cell(i int, firstID map[string]int, edgeIDs map[string]string, eps *endpoints) {
	cl := &v.c.Cells[i]
	p := fmt.Sprintf("cells[%d]", i)
	who := fmt.Sprintf("cell %q", cl.ID)
	switch {
	case cl.ID == "":
		who = p
		if !v.bad(p + ".id") {
			v.add(p+".id", "%s: id is required", who)
		}
	case !validName(cl.ID):
		v.add(p+".id", "%s: id must be lower-case letters, digits and '-', starting with a letter (max %d)", who, maxIDLen)
	}
	if first, dup := firstID[cl.ID]; dup && cl.ID != "" {
		v.add(p+".id", "%s: duplicate id (first at line %d)", who, first)
	} else if cl.ID != "" {
		firstID[cl.ID] = v.line(p + ".id")
	}

	if cl.Region == "" {
		if !v.bad(p + ".region") {
			v.add(p+".region", "%s: region is required (the cloud region, e.g. europe-west1)", who)
		}
	} else if !validRegion(cl.Region) {
		v.add(p+".region", "%s: region %q: want letters, digits, '-' and '_' (max %d)", who, cl.Region, maxRegionLen)
	}
	if cl.DBRegion == "" {
		cl.DBRegion = cl.Region
	} else if !validRegion(cl.DBRegion) {
		v.add(p+".db_region", "%s: db_region %q: want letters, digits, '-' and '_' (max %d)", who, cl.DBRegion, maxRegionLen)
	}

	for _, ep := range []struct{ key, addr string }{{"gateway", cl.Gateway}, {"api", cl.API}} {
		path := p + "." + ep.key
		switch {
		case ep.addr == "":
			if !v.bad(path) {
				v.add(path, "%s: %s is required (host:port)", who, ep.key)
			}
		case checkHostPort(ep.addr) != nil:
			v.add(path, "%s: %s %q: %v", who, ep.key, ep.addr, checkHostPort(ep.addr))
		default:
			eps.use("tcp", ep.addr, cl.ID, ep.key, path)
		}
	}
	if cl.Backbone != "" {
		path := p + ".backbone"
		if err := checkHostPort(cl.Backbone); err != nil {
			v.add(path, "%s: backbone %q: %v", who, cl.Backbone, err)
		} else {
			eps.use("tcp", cl.Backbone, cl.ID, "backbone", path)
		}
	}
	for _, name := range sortedNames(cl.Services) {
		addr, path := cl.Services[name], p+".services."+name
		switch {
		case !validName(name):
			v.add(path, "%s: services: name %q must be lower-case letters, digits and '-', starting with a letter (max %d)", who, name, maxIDLen)
		case name == "gateway" || name == "api":
			v.add(path, "%s: services: %q is not a service name; set the cell's %s key instead", who, name, name)
		case addr == "":
			if !v.bad(path) {
				v.add(path, "%s: services.%s: an endpoint is required (host:port); leave the service out to use api", who, name)
			}
		case checkHostPort(addr) != nil:
			v.add(path, "%s: services.%s %q: %v", who, name, addr, checkHostPort(addr))
		default:
			eps.use("tcp", addr, cl.ID, "services."+name, path)
		}
	}
	for j, e := range cl.Edges {
		v.edge(cl, i, j, e, edgeIDs, eps)
	}

	switch {
	case v.bad(p + ".capacity"):
	case cl.Capacity <= 0:
		v.add(p+".capacity", "%s: capacity must be > 0 (maximum concurrent sessions)", who)
	case cl.Capacity > maxCapacity:
		v.add(p+".capacity", "%s: capacity %d is above %d: split the cell instead", who, cl.Capacity, maxCapacity)
	}
	switch cl.State {
	case "":
		if !v.bad(p + ".state") {
			cl.State = StateActive
		}
	case StateActive, StateDraining, StateDisabled:
	default:
		v.add(p+".state", "%s: state %q: want active, draining or disabled", who, cl.State)
	}
}

func (v *validator) edge(cl *Cell, i, j int, e Edge, edgeIDs map[string]string, eps *endpoints) {
	p := fmt.Sprintf("cells[%d].edges[%d]", i, j)
	who := fmt.Sprintf("cell %q: edges[%d]", cl.ID, j)
	switch {
	case e.ID == "":
		if !v.bad(p + ".id") {
			v.add(p+".id", "%s: id is required", who)
		}
	case !validName(e.ID):
		v.add(p+".id", "%s: id %q must be lower-case letters, digits and '-', starting with a letter (max %d)", who, e.ID, maxIDLen)
	default:
		who = fmt.Sprintf("cell %q: edge %q", cl.ID, e.ID)
		if owner, dup := edgeIDs[e.ID]; dup {
			// Its endpoints are then duplicates too: one message is enough.
			v.add(p+".id", "%s: duplicate edge id (first in cell %q); list an edge once, under the cell it is nearest", who, owner)
			return
		}
		edgeIDs[e.ID] = cl.ID
	}
	if e.TCP == "" && e.QUIC == "" && e.WS == "" && !v.bad(p+".tcp") && !v.bad(p+".quic") && !v.bad(p+".ws") {
		v.add(p, "%s: needs at least one of tcp, quic, ws", who)
	}
	// QUIC is UDP: it may share a port number with the edge's TCP listener.
	for _, ep := range []struct{ key, net, addr string }{{"tcp", "tcp", e.TCP}, {"quic", "udp", e.QUIC}, {"ws", "tcp", e.WS}} {
		if ep.addr == "" {
			continue
		}
		path := p + "." + ep.key
		if err := checkHostPort(ep.addr); err != nil {
			v.add(path, "%s: %s %q: %v", who, ep.key, ep.addr, err)
			continue
		}
		eps.use(ep.net, ep.addr, cl.ID, fmt.Sprintf("edge %q %s", e.ID, ep.key), path)
	}
}

func (v *validator) failoverList(i int, firstID map[string]int) {
	cl := v.c.Cells[i]
	seen := map[string]bool{}
	for j, f := range cl.Failover {
		path := fmt.Sprintf("cells[%d].failover[%d]", i, j)
		switch {
		case f == "":
			if !v.bad(path) {
				v.add(path, "cell %q: failover[%d] is empty", cl.ID, j)
			}
		case f == cl.ID:
			v.add(path, "cell %q: fails over to itself", cl.ID)
		case seen[f]:
			v.add(path, "cell %q: failover lists %q twice", cl.ID, f)
		default:
			if _, ok := firstID[f]; !ok {
				v.add(path, "cell %q: failover to unknown cell %q", cl.ID, f)
			}
		}
		seen[f] = true
	}
}

// failoverReach applies the failover rules that look past one list (see
// docs/cells.md, "Failover rules"):
//
//   - error, dead failover cycle: cells whose failover lists lead back to
//     themselves (a cycle) while nothing reachable from them by following
//     failover lists is active. Their players can never be placed anywhere
//     by following the file, whatever the health of the world.
//   - warning: a cell whose own failover list names no active cell. The
//     router follows one hop (the first healthy active cell of the home's
//     list), so that cell's players have nowhere to go if it fails; for a
//     disabled cell that is already the case.
//
// A cycle of active cells, such as two cells failing over to each other, is
// the normal, valid shape.
func (v *validator) failoverReach() {
	cells := v.c.Cells
	idx := make(map[string]int, len(cells))
	for i, cl := range cells {
		if _, dup := idx[cl.ID]; !dup {
			idx[cl.ID] = i
		}
	}
	next := make([][]int, len(cells)) // failover edges to known, other cells
	for i, cl := range cells {
		for _, f := range cl.Failover {
			if j, ok := idx[f]; ok && j != i {
				next[i] = append(next[i], j)
			}
		}
	}
	reach := make([][]bool, len(cells)) // reach[i][j]: j reachable from i in ≥ 1 hop
	for i := range cells {
		reach[i] = make([]bool, len(cells))
		stack := append([]int(nil), next[i]...)
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if reach[i][j] {
				continue
			}
			reach[i][j] = true
			stack = append(stack, next[j]...)
		}
	}
	reported := make([]bool, len(cells))
	for i := range cells {
		if reported[i] || !reach[i][i] {
			continue
		}
		live := false
		for j := range cells {
			if reach[i][j] && cells[j].State == StateActive {
				live = true
				break
			}
		}
		if live {
			continue
		}
		// Mark the whole cycle (the cells that reach i and that i reaches)
		// so it is reported once, at its first cell in the file.
		for j := range cells {
			if reach[i][j] && reach[j][i] {
				reported[j] = true
			}
		}
		v.add(fmt.Sprintf("cells[%d].failover", i),
			"cell %q: dead failover cycle %s: no cell on it or reachable from it is active, so its players can never fail over",
			cells[i].ID, cyclePath(cells, next, reach, i))
	}
	for i, cl := range cells {
		if reported[i] {
			continue
		}
		var notActive []string
		ok := false
		for _, f := range cl.Failover {
			j, known := idx[f]
			if !known || j == i {
				continue // already an error
			}
			if cells[j].State == StateActive {
				ok = true
				break
			}
			notActive = append(notActive, fmt.Sprintf("%s is %s", f, cells[j].State))
		}
		path := fmt.Sprintf("cells[%d].failover", i)
		switch {
		case ok:
		case cl.State == StateDisabled:
			v.warn(path, "cell %q is disabled and no cell in its failover list is active%s: its players cannot be served",
				cl.ID, because(notActive))
		case len(notActive) > 0:
			v.warn(path, "cell %q: no cell in its failover list is active%s: if %s goes down, its players have nowhere to go",
				cl.ID, because(notActive), cl.ID)
		}
	}
}

func because(reasons []string) string {
	if len(reasons) == 0 {
		return ""
	}
	return " (" + strings.Join(reasons, ", ") + ")"
}

// cyclePath renders one cycle through start, following the first failover
// entry that stays on the cycle: "a → b → a".
func cyclePath(cells []Cell, next [][]int, reach [][]bool, start int) string {
	path := []string{cells[start].ID}
	at := start
	for range cells {
		step := -1
		for _, j := range next[at] {
			if j == start || reach[j][start] {
				step = j
				break
			}
		}
		if step < 0 {
			break
		}
		path = append(path, cells[step].ID)
		if step == start {
			break
		}
		at = step
	}
	return strings.Join(path, " → ")
}

// endpoints finds two listeners on one address. Within one cell, api and
// services may share an address (one HTTP server can serve them all);
// anything else sharing an address is a mistake: two processes cannot bind
// it, and the router could not tell the cells apart.
type endpoints struct {
	v    *validator
	seen map[string]endpointUse // network/host:port → first use
}

type endpointUse struct {
	cell, role, path string
}

func (e *endpoints) use(network, addr, cell, role, path string) {
	if e.seen == nil {
		e.seen = map[string]endpointUse{}
	}
	host, port, _ := net.SplitHostPort(addr)
	key := network + "/" + net.JoinHostPort(strings.ToLower(host), port)
	first, dup := e.seen[key]
	if !dup {
		e.seen[key] = endpointUse{cell: cell, role: role, path: path}
		return
	}
	if first.cell == cell && cell != "" && isHTTPRole(first.role) && isHTTPRole(role) {
		return
	}
	owner := first.role
	if first.cell != "" {
		owner = fmt.Sprintf("cell %q %s", first.cell, first.role)
	}
	who := role
	if cell != "" {
		who = fmt.Sprintf("cell %q: %s", cell, role)
	}
	e.v.add(path, "%s %s is already used by %s (line %d)", who, addr, owner, e.v.line(first.path))
}

func isHTTPRole(role string) bool { return role == "api" || strings.HasPrefix(role, "services.") }

// checkHostPort accepts host:port where host is an IP address or a DNS name
// and port is 1-65535: what the router hands to clients and what probes
// dial, so it must be reachable as written.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if host == "" {
		return fmt.Errorf("host is missing (want host:port, e.g. 10.0.0.5:4110)")
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > maxHostLength {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validName is the shape of cell, edge and service names: they appear in
// metric labels, Consul tags and DNS names.
func validName(s string) bool {
	if s == "" || len(s) > maxIDLen || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validRegion(s string) bool {
	if len(s) > maxRegionLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CheckServices reports, as problems with their lines, the services entries
// whose names are not in known (the services this binary can run). It is
// separate from Validate because config does not know the service list, and
// a warning rather than an error where it is used: a newer binary may know
// more services than the one checking the file.
func (c *Cells) CheckServices(known []string) []Problem {
	v := validator{c: c}
	for i, cl := range c.Cells {
		for _, name := range sortedNames(cl.Services) {
			if !slices.Contains(known, name) {
				v.warn(fmt.Sprintf("cells[%d].services.%s", i, name),
					"cell %q: services.%s: not a service this binary runs (known: %s)", cl.ID, name, strings.Join(known, ", "))
			}
		}
	}
	return sortProblems(v.warns)
}
