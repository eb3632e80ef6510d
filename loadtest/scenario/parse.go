package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livecell/livecell/internal/protocol"
)

// Limits of the format, in one place: docs/loadtest.md quotes them.
const (
	MaxFileSize   = 1 << 20    // bytes of YAML
	MaxPlayers    = 10_000_000 // players in one run
	MaxPhases     = 100
	MaxMixEntries = 64
	MaxNameLen    = 64
	MaxPayload    = 60 << 10 // bytes of JSON: a frame must fit the default 64 KiB max_frame
	MaxRate       = 1e6      // requests per second per player, or in total
	maxNodes      = 100_000  // YAML nodes visited, aliases expanded
	maxDepth      = 32       // nesting of a payload
	minHeartbeat  = 100 * time.Millisecond
	maxDuration   = 7 * 24 * time.Hour
)

// reservedNames are the session steps the load tester reports next to the
// request mix; a mix entry may not take their names.
var reservedNames = []string{"resolve", "register", "login", "refresh", "connect", "reconnect", "all"}

// Problem is one thing wrong in a scenario file, at a line of it.
type Problem struct {
	Line int // 1-based; 0 for the file as a whole
	Msg  string
}

// In formats p as "file:8: msg", or "line 8: msg" when file is empty.
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

func (p Problem) String() string { return p.In("") }

// Error lists every problem of a scenario file, in line order.
type Error struct {
	File     string // set by Load
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid scenario")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	if len(e.Problems) == 1 {
		b.WriteString(" (1 problem):")
	} else {
		fmt.Fprintf(&b, " (%d problems):", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.In(e.File))
	}
	return b.String()
}

// Overrides replace values of the file, as command-line flags do.
type Overrides struct {
	// Players, when positive, replaces the file's players: phases given
	// in percent scale with it.
	Players int
}

// Load reads and parses the scenario file at path.
func Load(path string, o Overrides) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("scenario: %s: %w", path, err)
	}
	s, err := ParseWith(data, o)
	if e, ok := errors.AsType[*Error](err); ok {
		e.File = path
	}
	return s, err
}

// Parse decodes and validates a scenario. Every problem comes back in one
// *Error.
func Parse(data []byte) (*Scenario, error) { return ParseWith(data, Overrides{}) }

// ParseWith is Parse with some values of the file replaced.
func ParseWith(data []byte, o Overrides) (*Scenario, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Problems: []Problem{{Msg: fmt.Sprintf("the file is larger than %d bytes", MaxFileSize)}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Problems: []Problem{{Msg: "the file is empty"}}}
		}
		return nil, &Error{Problems: []Problem{yamlProblem(err)}}
	}
	p := &parser{budget: maxNodes, o: o}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(extra.Line, "a second YAML document (---): a scenario is one document")
	} else if !errors.Is(err, io.EOF) {
		p.probs = append(p.probs, yamlProblem(err))
	}
	s := p.scenario(&root)
	if len(p.probs) > 0 {
		sort.SliceStable(p.probs, func(i, j int) bool { return p.probs[i].Line < p.probs[j].Line })
		return nil, &Error{Problems: dedupe(p.probs)}
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlProblem(err error) Problem {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Msg: "YAML: " + m[2]}
	}
	return Problem{Msg: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

func dedupe(ps []Problem) []Problem {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// parser walks the YAML tree by hand rather than decoding into structs:
// a person fixing a scenario wants every problem at once, with its line
// and in the file's terms, not yaml.v3's first type error naming Go types.
type parser struct {
	o      Overrides
	probs  []Problem
	budget int // nodes left to visit: aliases can make a small file huge
}

func (p *parser) add(line int, format string, args ...any) {
	p.probs = append(p.probs, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// field is one key of a mapping: its handler gets the value node.
type field struct {
	name string
	set  func(v *yaml.Node)
}

// deref follows an alias and charges the visit to the budget; nil means
// the budget is spent (reported once).
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	p.budget--
	if p.budget == 0 {
		p.add(n.Line, "more than %d values once aliases are expanded: not checked further", maxNodes)
	}
	if p.budget < 0 {
		return nil
	}
	return n
}

// mapping checks that n is a mapping of known keys, each at most once, and
// hands every value to its field. where names the mapping in messages. It
// returns the keys the mapping sets, and those a misspelt key was taken
// for: a key reported as misspelt is not reported missing as well.
func (p *parser) mapping(n *yaml.Node, where string, fields []field) map[string]bool {
	present := map[string]bool{}
	if n = p.deref(n); n == nil {
		return present
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "%s: want a mapping of keys, got %s", where, describe(n))
		return present
	}
	seen := map[string]int{}
	var merged []*yaml.Node // key, value pairs pulled in by merge keys (<<)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, p.mergeSource(n.Content[i+1], where)...)
		}
	}
	// A mapping's own keys override merged ones, as in YAML's merge.
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode {
			own[k.Value] = true
		}
	}
	mergedSeen := map[string]bool{}
	pairs := make([]*yaml.Node, 0, len(merged)+len(n.Content))
	for i := 0; i+1 < len(merged); i += 2 {
		if k := merged[i]; !own[k.Value] && !mergedSeen[k.Value] {
			mergedSeen[k.Value] = true
			pairs = append(pairs, merged[i], merged[i+1])
		}
	}
	pairs = append(pairs, n.Content...)
	for i := 0; i+1 < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, "%s: keys must be plain words", where)
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, "%s: key %q is set twice (first at line %d)", where, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		var f *field
		for j := range fields {
			if fields[j].name == k.Value {
				f = &fields[j]
			}
		}
		if f == nil {
			msg, meant := unknownKey(k.Value, fields)
			p.add(k.Line, "%s: %s", where, msg)
			if meant != "" {
				present[meant] = true
			}
			continue
		}
		if isNull(v) {
			continue // "key:" with no value: the default, or missing when required
		}
		present[k.Value] = true
		f.set(v)
	}
	return present
}

// mergeSource returns the key, value pairs a merge key (<<) pulls in: from
// an anchored mapping, or a list of them (earlier ones win).
func (p *parser) mergeSource(v *yaml.Node, where string) []*yaml.Node {
	if v = p.deref(v); v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		var out []*yaml.Node
		for i := 0; i+1 < len(v.Content); i += 2 {
			if k := v.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				out = append(out, p.mergeSource(v.Content[i+1], where)...)
				continue
			}
			out = append(out, v.Content[i], v.Content[i+1])
		}
		return out
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, e := range v.Content {
			out = append(out, p.mergeSource(e, where)...)
		}
		return out
	}
	p.add(v.Line, "%s: <<: want an anchored mapping, got %s", where, describe(v))
	return nil
}

// unknownKey is the message for a key no field has, and the field it is a
// plausible typo of.
func unknownKey(name string, fields []field) (string, string) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("unknown key %q (did you mean %q?)", name, s), s
	}
	sort.Strings(names)
	return fmt.Sprintf("unknown key %q (known: %s)", name, strings.Join(names, ", ")), ""
}

func isMapping(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.MappingNode
}

func isNull(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return strconv.Quote(v)
	}
	return "something else"
}

// scalar returns n's value when it is a scalar.
func (p *parser) scalar(n *yaml.Node, label, want string) (string, int, bool) {
	if n = p.deref(n); n == nil {
		return "", 0, false
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, "%s: want %s, got %s", label, want, describe(n))
		return "", n.Line, false
	}
	return n.Value, n.Line, true
}

func (p *parser) str(n *yaml.Node, label string, dst *string) {
	if v, _, ok := p.scalar(n, label, "a string"); ok {
		*dst = v
	}
}

// integer reads a whole number in [lo, hi].
func (p *parser) integer(n *yaml.Node, label string, lo, hi int, dst *int) {
	v, line, ok := p.scalar(n, label, "a whole number")
	if !ok {
		return
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64)
	if err != nil {
		p.add(line, "%s: want a whole number, got %q", label, v)
		return
	}
	if i < int64(lo) || i > int64(hi) {
		p.add(line, "%s: %d is out of range [%d, %d]", label, i, lo, hi)
		return
	}
	*dst = int(i)
}

func (p *parser) boolean(n *yaml.Node, label string, dst *bool) {
	v, line, ok := p.scalar(n, label, "true or false")
	if !ok {
		return
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		p.add(line, "%s: want true or false, got %q", label, v)
	}
}

// duration reads a Go duration ("1.5s", "250ms") in (0, maxDuration].
func (p *parser) duration(n *yaml.Node, label string, dst *time.Duration) {
	v, line, ok := p.scalar(n, label, "a duration such as 30s")
	if !ok {
		return
	}
	if d, ok := p.parseDuration(v, line, label); ok {
		*dst = d
	}
}

func (p *parser) parseDuration(v string, line int, label string) (time.Duration, bool) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		p.add(line, "%s: want a duration such as 30s or 250ms, got %q", label, v)
		return 0, false
	}
	if d <= 0 || d > maxDuration {
		p.add(line, "%s: %s is out of range (0, %s]", label, v, maxDuration)
		return 0, false
	}
	return d, true
}

// rangeDur reads "250ms" or "100ms..2s".
func (p *parser) rangeDur(n *yaml.Node, label string, dst *Range) {
	v, line, ok := p.scalar(n, label, "a duration or a range such as 1s..3s")
	if !ok {
		return
	}
	lo, hi, isRange := strings.Cut(v, "..")
	if !isRange {
		hi = lo
	}
	a, okA := p.parseDuration(lo, line, label)
	b, okB := p.parseDuration(hi, line, label)
	if !okA || !okB {
		return
	}
	if b < a {
		p.add(line, "%s: the range %s runs backwards", label, v)
		return
	}
	*dst = Range{Min: a, Max: b}
}

// rate reads requests per second: "5", "5/s", "300/min".
func (p *parser) rate(n *yaml.Node, label string, dst *float64) {
	v, line, ok := p.scalar(n, label, "a rate such as 10/s")
	if !ok {
		return
	}
	num, unit, _ := strings.Cut(strings.ReplaceAll(v, " ", ""), "/")
	r, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(r) || math.IsInf(r, 0) {
		p.add(line, "%s: want a rate such as 10/s or 300/min, got %q", label, v)
		return
	}
	switch unit {
	case "", "s", "sec":
	case "m", "min":
		r /= 60
	case "h":
		r /= 3600
	default:
		p.add(line, "%s: unknown unit %q in %q: use /s, /min or /h", label, unit, v)
		return
	}
	if r <= 0 || r > MaxRate {
		p.add(line, "%s: %s is out of range: want more than 0 and at most %g per second", label, v, float64(MaxRate))
		return
	}
	*dst = r
}

// oneOf reads one of the allowed words.
func (p *parser) oneOf(n *yaml.Node, label string, allowed []string, dst *string) {
	v, line, ok := p.scalar(n, label, "one of "+strings.Join(allowed, ", "))
	if !ok {
		return
	}
	for _, a := range allowed {
		if v == a {
			*dst = v
			return
		}
	}
	msg := fmt.Sprintf("%s: %q is not one of %s", label, v, strings.Join(allowed, ", "))
	if s := suggest(v, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	p.add(line, "%s", msg)
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// name reads a label: lower-case letters, digits, '.', '_' and '-'.
func (p *parser) name(n *yaml.Node, label string, dst *string) {
	v, line, ok := p.scalar(n, label, "a name")
	if !ok {
		return
	}
	if len(v) > MaxNameLen || !namePattern.MatchString(v) {
		p.add(line, "%s: %q is not a name: use up to %d lower-case letters, digits, '.', '_' and '-'", label, v, MaxNameLen)
		return
	}
	*dst = v
}

func (p *parser) scenario(root *yaml.Node) *Scenario {
	s := &Scenario{
		Login:    LoginPassword,
		Connect:  Connect{Via: ViaGateway, Transport: DefaultTransport, Timeout: DefaultTimeout},
		Session:  Session{Resume: true},
		Requests: Requests{Arrival: ArrivalUniform},
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.add(0, "the file is empty")
			return s
		}
		root = root.Content[0]
	}
	var (
		login, via, arrival            string
		phasesLine                     int
		mixNode                        *yaml.Node
		phaseNodes                     *yaml.Node
		rateLine, totalLine, thinkLine int
		requestsLine                   int
	)
	top := p.mapping(root, "scenario", []field{
		{"name", func(v *yaml.Node) { p.name(v, "name", &s.Name) }},
		{"players", func(v *yaml.Node) { p.integer(v, "players", 1, MaxPlayers, &s.Players) }},
		{"cells", func(v *yaml.Node) { s.Cells = p.cells(v) }},
		{"login", func(v *yaml.Node) {
			p.oneOf(v, "login", []string{string(LoginPassword), string(LoginToken)}, &login)
		}},
		{"connect", func(v *yaml.Node) {
			p.mapping(v, "connect", []field{
				{"via", func(v *yaml.Node) { p.oneOf(v, "connect.via", []string{string(ViaGateway), string(ViaEdge)}, &via) }},
				{"transport", func(v *yaml.Node) { p.name(v, "connect.transport", &s.Connect.Transport) }},
				{"heartbeat", func(v *yaml.Node) {
					if val, line, ok := p.scalar(v, "connect.heartbeat", "server, off or a duration"); ok {
						switch val {
						case "server":
						case "off", "false":
							s.Connect.Heartbeat = -1
						default:
							if d, ok := p.parseDuration(val, line, "connect.heartbeat"); ok {
								if d < minHeartbeat {
									p.add(line, "connect.heartbeat: %s is below the minimum of %s", val, minHeartbeat)
								}
								s.Connect.Heartbeat = d
							}
						}
					}
				}},
				{"timeout", func(v *yaml.Node) { p.duration(v, "connect.timeout", &s.Connect.Timeout) }},
			})
		}},
		{"session", func(v *yaml.Node) {
			p.mapping(v, "session", []field{
				{"length", func(v *yaml.Node) { p.rangeDur(v, "session.length", &s.Session.Length) }},
				{"offline", func(v *yaml.Node) { p.rangeDur(v, "session.offline", &s.Session.Offline) }},
				{"resume", func(v *yaml.Node) { p.boolean(v, "session.resume", &s.Session.Resume) }},
			})
		}},
		{"requests", func(v *yaml.Node) {
			requestsLine = v.Line
			p.mapping(v, "requests", []field{
				{"rate", func(v *yaml.Node) { rateLine = v.Line; p.rate(v, "requests.rate", &s.Requests.Rate) }},
				{"total_rate", func(v *yaml.Node) { totalLine = v.Line; p.rate(v, "requests.total_rate", &s.Requests.TotalRate) }},
				{"think", func(v *yaml.Node) { thinkLine = v.Line; p.rangeDur(v, "requests.think", &s.Requests.Think) }},
				{"arrival", func(v *yaml.Node) {
					p.oneOf(v, "requests.arrival", []string{string(ArrivalUniform), string(ArrivalPoisson)}, &arrival)
				}},
				{"mix", func(v *yaml.Node) { mixNode = v }},
			})
		}},
		{"phases", func(v *yaml.Node) { phasesLine, phaseNodes = v.Line, v }},
	})
	if login != "" {
		s.Login = Login(login)
	}
	if via != "" {
		s.Connect.Via = Via(via)
	}
	if arrival != "" {
		s.Requests.Arrival = Arrival(arrival)
	}
	if root.Kind != yaml.MappingNode {
		return s // already reported: nothing else to check
	}
	if !top["name"] {
		p.add(root.Line, "scenario: name is required")
	}
	if p.o.Players > 0 {
		if p.o.Players > MaxPlayers {
			p.add(0, "players %d (from the command line) is out of range [1, %d]", p.o.Players, MaxPlayers)
		}
		s.Players = p.o.Players
	} else if !top["players"] {
		p.add(root.Line, "scenario: players is required")
	}
	if !s.Session.Offline.IsZero() && s.Session.Length.IsZero() {
		p.add(root.Line, "session: offline needs a session length: players only go offline when a session ends")
	}

	// Requests: one of rate, total_rate and think; a mix when any.
	set := 0
	for _, l := range []int{rateLine, totalLine, thinkLine} {
		if l > 0 {
			set++
		}
	}
	if set > 1 {
		p.add(max(rateLine, totalLine, thinkLine), "requests: set one of rate (per player), total_rate and think, not several")
	}
	if s.Requests.TotalRate > 0 && s.Players > 0 {
		s.Requests.Rate = s.Requests.TotalRate / float64(s.Players)
	}
	if mixNode != nil {
		s.Requests.Mix = p.mix(mixNode)
	}
	if set > 0 && mixNode == nil {
		p.add(requestsLine, "requests: a rate or think time needs a mix of operations to send")
	}
	if set == 0 && mixNode != nil {
		p.add(mixNode.Line, "requests.mix: say how often to send: rate, total_rate or think")
	}

	if !top["phases"] {
		p.add(root.Line, "scenario: phases is required (for example one phase: {name: steady, duration: 30s})")
	} else if phaseNodes != nil {
		s.Phases = p.phases(phaseNodes, s.Players, s.Players > 0)
	}
	if phasesLine > 0 && s.Players > 0 && len(s.Phases) > 0 {
		peak := 0
		for _, ph := range s.Phases {
			peak = max(peak, ph.From, ph.To)
		}
		if peak == 0 {
			p.add(phasesLine, "phases: no phase has any players")
		}
	}
	return s
}

func (p *parser) cells(n *yaml.Node) []string {
	if n = p.deref(n); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "cells: want a list of cell ids, got %s", describe(n))
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, e := range n.Content {
		var id string
		p.name(e, fmt.Sprintf("cells[%d]", i), &id)
		if id == "" {
			continue
		}
		if first, dup := seen[id]; dup {
			p.add(e.Line, "cells[%d]: %q is listed twice (first at line %d)", i, id, first)
			continue
		}
		seen[id] = e.Line
		out = append(out, id)
	}
	return out
}

func (p *parser) mix(n *yaml.Node) []Op {
	if n = p.deref(n); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "requests.mix: want a list of operations, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.add(n.Line, "requests.mix: the list is empty")
		return nil
	}
	if len(n.Content) > MaxMixEntries {
		p.add(n.Line, "requests.mix: %d entries, at most %d", len(n.Content), MaxMixEntries)
		return nil
	}
	var out []Op
	seen := map[string]int{}
	total := 0
	for i, e := range n.Content {
		where := fmt.Sprintf("requests.mix[%d]", i)
		op := Op{Weight: 1}
		var (
			size, sizeLine int
			payload        *yaml.Node
			okOp           bool
		)
		keys := p.mapping(e, where, []field{
			{"name", func(v *yaml.Node) { p.name(v, where+".name", &op.Name) }},
			{"op", func(v *yaml.Node) { op.Opcode, okOp = p.opcode(v, where+".op") }},
			{"weight", func(v *yaml.Node) { p.integer(v, where+".weight", 0, 1_000_000, &op.Weight) }},
			{"payload", func(v *yaml.Node) { payload = v }},
			{"size", func(v *yaml.Node) {
				sizeLine = v.Line
				p.integer(v, where+".size", len(`{"p":""}`), MaxPayload, &size)
			}},
		})
		if !isMapping(e) {
			continue // reported by mapping
		}
		if !keys["op"] {
			p.add(e.Line, "%s: op is required (an opcode name such as echo, or a number such as 0x0201)", where)
			continue
		}
		if !okOp {
			continue
		}
		if payload != nil && sizeLine > 0 {
			p.add(sizeLine, "%s: set payload or size, not both", where)
		}
		if payload != nil {
			if b, ok := p.payload(payload, where+".payload"); ok {
				op.Payload = b
			}
		}
		if size > 0 {
			op.Payload = padded(size)
		}
		if op.Name == "" {
			op.Name = op.Opcode.String()
			if op.Name == "unknown" {
				op.Name = "op-" + strings.TrimPrefix(op.Opcode.Hex(), "0x")
			}
		}
		for _, r := range reservedNames {
			if op.Name == r {
				p.add(e.Line, "%s: the name %q is taken by a session step: give the entry another name", where, op.Name)
			}
		}
		if first, dup := seen[op.Name]; dup {
			p.add(e.Line, "%s: the name %q is used twice (first at line %d): give one a name:", where, op.Name, first)
			continue
		}
		seen[op.Name] = e.Line
		total += op.Weight
		out = append(out, op)
	}
	if total == 0 && len(out) > 0 {
		p.add(n.Line, "requests.mix: every weight is 0: nothing would be sent")
	}
	return out
}

// padded returns a JSON object of exactly size bytes.
func padded(size int) []byte {
	return []byte(`{"p":"` + strings.Repeat("x", size-len(`{"p":""}`)) + `"}`)
}

// opcode reads an opcode name from the protocol's table or a number. The
// gateway's control opcodes (hello, error, push, ...) cannot be requested.
func (p *parser) opcode(n *yaml.Node, label string) (protocol.Opcode, bool) {
	v, line, ok := p.scalar(n, label, "an opcode name or number")
	if !ok {
		return 0, false
	}
	var op protocol.Opcode
	if i, err := strconv.ParseInt(v, 0, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || i < 1 || i > 0xffff {
			p.add(line, "%s: %s is out of range: opcodes are 1 to 0xffff", label, v)
			return 0, false
		}
		op = protocol.Opcode(i)
	} else {
		var names []string
		found := false
		for _, oi := range protocol.Ops() {
			if requestable(oi.Op) {
				names = append(names, oi.Name)
			}
			if oi.Name == v {
				op, found = oi.Op, true
			}
		}
		if !found {
			msg := fmt.Sprintf("%s: unknown opcode %q (known: %s; or a number such as 0x0201)", label, v, strings.Join(names, ", "))
			if s := suggest(v, names); s != "" {
				msg = fmt.Sprintf("%s: unknown opcode %q (did you mean %q?)", label, v, s)
			}
			p.add(line, "%s", msg)
			return 0, false
		}
	}
	if !requestable(op) {
		p.add(line, "%s: %s (%s) is a control frame, not a request", label, op.Hex(), op)
		return 0, false
	}
	return op, true
}

// requestable reports whether a client may send op as a request.
func requestable(op protocol.Opcode) bool {
	switch op {
	case 0, protocol.OpHello, protocol.OpError, protocol.OpReconnect, protocol.OpPush, protocol.OpBye:
		return false
	}
	return true
}

// payload converts a YAML value into the JSON the request carries.
func (p *parser) payload(n *yaml.Node, label string) ([]byte, bool) {
	v, ok := p.jsonValue(n, label, 0)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		p.add(n.Line, "%s: cannot be sent as JSON: %v", label, err)
		return nil, false
	}
	if len(b) > MaxPayload {
		p.add(n.Line, "%s: %d bytes of JSON, at most %d", label, len(b), MaxPayload)
		return nil, false
	}
	return b, true
}

// jsonValue converts a YAML node into a value encoding/json marshals in
// the file's order (mappings become ordered objects).
func (p *parser) jsonValue(n *yaml.Node, label string, depth int) (any, bool) {
	if n = p.deref(n); n == nil {
		return nil, false
	}
	if depth > maxDepth {
		p.add(n.Line, "%s: nested deeper than %d levels", label, maxDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		obj := orderedObject{}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				p.add(k.Line, "%s: JSON object keys must be plain strings", label)
				return nil, false
			}
			if seen[k.Value] {
				p.add(k.Line, "%s: key %q is set twice", label, k.Value)
				return nil, false
			}
			seen[k.Value] = true
			v, ok := p.jsonValue(n.Content[i+1], label+"."+k.Value, depth+1)
			if !ok {
				return nil, false
			}
			obj = append(obj, member{k.Value, v})
		}
		return obj, true
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			v, ok := p.jsonValue(e, fmt.Sprintf("%s[%d]", label, i), depth+1)
			if !ok {
				return nil, false
			}
			arr = append(arr, v)
		}
		return arr, true
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!bool", "!!int":
			var v any
			if err := n.Decode(&v); err != nil {
				p.add(n.Line, "%s: %v", label, err)
				return nil, false
			}
			return v, true
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				p.add(n.Line, "%s: %q is not a JSON number", label, n.Value)
				return nil, false
			}
			return f, true
		}
		return n.Value, true // strings, timestamps, binary: as written
	}
	p.add(n.Line, "%s: want a JSON value, got %s", label, describe(n))
	return nil, false
}

// orderedObject marshals as a JSON object with its members in file order.
type orderedObject []member

type member struct {
	key string
	val any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// phases reads the run's phases. A phase that gives players ramps from the
// previous phase's count (0 before the first) to it; one that does not
// holds the previous count, and a first phase without players runs every
// player from the start.
func (p *parser) phases(n *yaml.Node, players int, havePlayers bool) []Phase {
	if n = p.deref(n); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "phases: want a list of phases, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.add(n.Line, "phases: the list is empty")
		return nil
	}
	if len(n.Content) > MaxPhases {
		p.add(n.Line, "phases: %d phases, at most %d", len(n.Content), MaxPhases)
		return nil
	}
	var out []Phase
	seen := map[string]int{}
	prev := 0
	var total time.Duration
	for i, e := range n.Content {
		where := fmt.Sprintf("phases[%d]", i)
		ph := Phase{From: prev, To: prev}
		if i == 0 {
			ph.From, ph.To = players, players
		}
		var playersVal string
		var playersAt int
		keys := p.mapping(e, where, []field{
			{"name", func(v *yaml.Node) { p.name(v, where+".name", &ph.Name) }},
			{"duration", func(v *yaml.Node) { p.duration(v, where+".duration", &ph.Duration) }},
			{"players", func(v *yaml.Node) {
				if val, line, ok := p.scalar(v, where+".players", "a number of players or a percentage"); ok {
					playersVal, playersAt = val, line
				}
			}},
		})
		if !isMapping(e) {
			continue // reported by mapping
		}
		if ph.Name == "" {
			ph.Name = fmt.Sprintf("phase-%d", i+1)
		} else if first, dup := seen[ph.Name]; dup {
			p.add(e.Line, "%s: the name %q is used twice (first at line %d)", where, ph.Name, first)
		}
		seen[ph.Name] = e.Line
		if !keys["duration"] {
			p.add(e.Line, "%s: duration is required", where)
		}
		if playersVal != "" {
			if n, ok := p.playerTarget(playersVal, playersAt, where+".players", players, havePlayers); ok {
				ph.From, ph.To = prev, n
			}
		}
		total += ph.Duration
		prev = ph.To
		out = append(out, ph)
	}
	if total > maxDuration {
		p.add(n.Line, "phases: the run lasts %s, at most %s", total, maxDuration)
	}
	return out
}

// playerTarget reads "250" or "50%" (of players).
func (p *parser) playerTarget(v string, line int, label string, players int, havePlayers bool) (int, bool) {
	if pct, ok := strings.CutSuffix(strings.TrimSpace(v), "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			p.add(line, "%s: want a percentage from 0%% to 100%%, got %q", label, v)
			return 0, false
		}
		if !havePlayers {
			return 0, false // players is missing: reported once, there
		}
		return int(math.Round(f / 100 * float64(players))), true
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 0 {
		p.add(line, "%s: want a number of players or a percentage such as 50%%, got %q", label, v)
		return 0, false
	}
	if havePlayers && n > players {
		p.add(line, "%s: %d is more than the %d players of the scenario", label, n, players)
		return 0, false
	}
	return n, true
}

// suggest returns the candidate closest to name when it is a plausible
// typo (edit distance at most 2), else "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // not a typo of a key; and bounds the work on hostile input
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
