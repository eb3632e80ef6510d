package scenario

import (
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// minimal is the smallest valid scenario; tests append to it.
const minimal = `name: t
players: 10
phases:
  - {name: steady, duration: 5s}
`

func TestParseFull(t *testing.T) {
	doc := `name: full
players: 100
cells: [eu-west, us-east]
login: token
connect:
  via: edge
  transport: quic
  heartbeat: 2s
  timeout: 3s
session:
  length: 10s..20s
  offline: 1s
  resume: false
requests:
  total_rate: 500/s
  arrival: poisson
  mix:
    - op: echo
      weight: 3
      payload: {b: 1, a: [x, 2.5, true, null]}
    - {name: inv, op: 0x0201, weight: 1}
    - {op: ping, weight: 0}
    - {name: big, op: echo, size: 32}
phases:
  - {name: up, duration: 10s, players: 50%}
  - {name: hold, duration: 1m}
  - {name: down, duration: 5s, players: 0}
`
	got, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Scenario{
		Name: "full", Players: 100, Cells: []string{"eu-west", "us-east"}, Login: LoginToken,
		Connect: Connect{Via: ViaEdge, Transport: "quic", Heartbeat: 2 * time.Second, Timeout: 3 * time.Second},
		Session: Session{Length: Range{10 * time.Second, 20 * time.Second}, Offline: Range{time.Second, time.Second}},
		Requests: Requests{Rate: 5, TotalRate: 500, Arrival: ArrivalPoisson, Mix: []Op{
			{Name: "echo", Opcode: protocol.OpEcho, Weight: 3, Payload: []byte(`{"b":1,"a":["x",2.5,true,null]}`)},
			{Name: "inv", Opcode: protocol.OpInventoryGet, Weight: 1},
			{Name: "ping", Opcode: protocol.OpPing, Weight: 0},
			{Name: "big", Opcode: protocol.OpEcho, Weight: 1, Payload: []byte(`{"p":"` + strings.Repeat("x", 24) + `"}`)},
		}},
		Phases: []Phase{
			{Name: "up", Duration: 10 * time.Second, From: 0, To: 50},
			{Name: "hold", Duration: time.Minute, From: 50, To: 50},
			{Name: "down", Duration: 5 * time.Second, From: 50, To: 0},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if n := len(got.Requests.Mix[3].Payload); n != 32 {
		t.Errorf("size: 32 gave a %d-byte payload", n)
	}
	if d := got.Duration(); d != 75*time.Second {
		t.Errorf("Duration = %s, want 1m15s", d)
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s.Login != LoginPassword || s.Connect.Via != ViaGateway || s.Connect.Transport != "tcp" ||
		s.Connect.Timeout != DefaultTimeout || s.Connect.Heartbeat != 0 || !s.Session.Resume ||
		s.Requests.Arrival != ArrivalUniform || s.Requests.OpenLoop() {
		t.Errorf("defaults: got %+v", s)
	}
	// A lone phase without players runs everyone from the start.
	if got := s.Phases[0]; got.From != 10 || got.To != 10 {
		t.Errorf("lone phase: got %+v, want from 10 to 10", got)
	}
}

func TestParseOverridePlayers(t *testing.T) {
	doc := strings.Replace(minimal, "  - {name: steady, duration: 5s}", "  - {name: up, duration: 5s, players: 50%}\n  - {name: fixed, duration: 1s, players: 3}", 1)
	s, err := ParseWith([]byte(doc), Overrides{Players: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if s.Players != 1000 || s.Phases[0].To != 500 || s.Phases[1].From != 500 || s.Phases[1].To != 3 {
		t.Errorf("override: got players %d phases %+v", s.Players, s.Phases)
	}
}

func TestParseHeartbeatOff(t *testing.T) {
	s, err := Parse([]byte(minimal + "connect: {heartbeat: off}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Connect.Heartbeat >= 0 {
		t.Errorf("heartbeat off: got %v, want negative", s.Connect.Heartbeat)
	}
}

func TestParseRates(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
	}{
		{"5", 5}, {"5/s", 5}, {"0.5/s", 0.5}, {"120/min", 2}, {"3600/h", 1}, {"60 / m", 1},
	} {
		s, err := Parse([]byte(minimal + "requests: {rate: \"" + tt.in + "\", mix: [{op: ping}]}\n"))
		if err != nil {
			t.Errorf("rate %q: %v", tt.in, err)
			continue
		}
		if s.Requests.Rate != tt.want {
			t.Errorf("rate %q: got %g, want %g", tt.in, s.Requests.Rate, tt.want)
		}
	}
}

// problems returns Parse's problems as "line N: msg" strings.
func problems(t *testing.T, doc string) []string {
	t.Helper()
	_, err := Parse([]byte(doc))
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error %v (%T), want an *Error", err, err)
	}
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.String()
	}
	return out
}

func TestParseRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		doc  string
		want []string
	}{
		{"empty", "", []string{"the file is empty"}},
		{"not a mapping", "- a\n", []string{"line 1: scenario: want a mapping of keys, got a list"}},
		{"syntax", "name: [\n", []string{"line 1: YAML: did not find expected node content"}},
		{"missing", "name: x\n", []string{"line 1: scenario: players is required", "line 1: scenario: phases is required (for example one phase: {name: steady, duration: 30s})"}},
		{"typo", minimal + "playres: 3\n", []string{`line 5: scenario: unknown key "playres" (did you mean "players"?)`}},
		{"twice", minimal + "players: 3\n", []string{`line 5: scenario: key "players" is set twice (first at line 2)`}},
		{"players range", strings.Replace(minimal, "players: 10", "players: 0", 1), []string{"line 2: players: 0 is out of range [1, 10000000]"}},
		{"players type", strings.Replace(minimal, "players: 10", "players: [1]", 1), []string{"line 2: players: want a whole number, got a list"}},
		{"bad login", minimal + "login: steam\n", []string{`line 5: login: "steam" is not one of password, token`}},
		{"bad via", minimal + "connect: {via: edgee}\n", []string{`line 5: connect.via: "edgee" is not one of gateway, edge (did you mean "edge"?)`}},
		{"bad duration", strings.Replace(minimal, "5s}", "5 parsecs}", 1), []string{`line 4: phases[0].duration: want a duration such as 30s or 250ms, got "5 parsecs"`}},
		{"negative duration", strings.Replace(minimal, "5s}", "-5s}", 1), []string{"line 4: phases[0].duration: -5s is out of range (0, 168h0m0s]"}},
		{"no duration", strings.Replace(minimal, ", duration: 5s", "", 1), []string{"line 4: phases[0]: duration is required"}},
		{"backwards range", minimal + "session: {length: 5s..1s}\n", []string{"line 5: session.length: the range 5s..1s runs backwards"}},
		{"offline alone", minimal + "session: {offline: 1s}\n", []string{"line 1: session: offline needs a session length: players only go offline when a session ends"}},
		{"heartbeat too fast", minimal + "connect: {heartbeat: 1ms}\n", []string{"line 5: connect.heartbeat: 1ms is below the minimum of 100ms"}},
		{"two rates", minimal + "requests:\n  rate: 1/s\n  think: 1s\n  mix: [{op: ping}]\n", []string{"line 7: requests: set one of rate (per player), total_rate and think, not several"}},
		{"rate unit", minimal + "requests: {rate: 5/day, mix: [{op: ping}]}\n", []string{`line 5: requests.rate: unknown unit "day" in "5/day": use /s, /min or /h`}},
		{"rate zero", minimal + "requests: {rate: 0, mix: [{op: ping}]}\n", []string{"line 5: requests.rate: 0 is out of range: want more than 0 and at most 1e+06 per second"}},
		{"rate without mix", minimal + "requests: {rate: 1}\n", []string{"line 5: requests: a rate or think time needs a mix of operations to send"}},
		{"mix without rate", minimal + "requests: {mix: [{op: ping}]}\n", []string{"line 5: requests.mix: say how often to send: rate, total_rate or think"}},
		{"unknown op", minimal + "requests: {rate: 1, mix: [{op: pong}]}\n", []string{`line 5: requests.mix[0].op: unknown opcode "pong" (did you mean "ping"?)`}},
		{"control op", minimal + "requests: {rate: 1, mix: [{op: hello}]}\n", []string{"line 5: requests.mix[0].op: 0x0001 (hello) is a control frame, not a request"}},
		{"op number range", minimal + "requests: {rate: 1, mix: [{op: 70000}]}\n", []string{"line 5: requests.mix[0].op: 70000 is out of range: opcodes are 1 to 0xffff"}},
		{"op unknown word", minimal + "requests: {rate: 1, mix: [{op: teleport}]}\n", []string{`line 5: requests.mix[0].op: unknown opcode "teleport" (known: ` + requestableNames() + `; or a number such as 0x0201)`}},
		{"no op", minimal + "requests: {rate: 1, mix: [{weight: 1}]}\n", []string{"line 5: requests.mix[0]: op is required (an opcode name such as echo, or a number such as 0x0201)"}},
		{"dup name", minimal + "requests: {rate: 1, mix: [{op: ping}, {op: ping}]}\n", []string{`line 5: requests.mix[1]: the name "ping" is used twice (first at line 5): give one a name:`}},
		{"reserved name", minimal + "requests: {rate: 1, mix: [{name: connect, op: ping}]}\n", []string{`line 5: requests.mix[0]: the name "connect" is taken by a session step: give the entry another name`}},
		{"zero weights", minimal + "requests: {rate: 1, mix: [{op: ping, weight: 0}]}\n", []string{"line 5: requests.mix: every weight is 0: nothing would be sent"}},
		{"payload and size", minimal + "requests: {rate: 1, mix: [{op: echo, payload: {}, size: 10}]}\n", []string{"line 5: requests.mix[0]: set payload or size, not both"}},
		{"payload nan", minimal + "requests: {rate: 1, mix: [{op: echo, payload: {x: .nan}}]}\n", []string{`line 5: requests.mix[0].payload.x: ".nan" is not a JSON number`}},
		{"payload key", minimal + "requests: {rate: 1, mix: [{op: echo, payload: {[a]: 1}}]}\n", []string{"line 5: requests.mix[0].payload: JSON object keys must be plain strings"}},
		{"size small", minimal + "requests: {rate: 1, mix: [{op: echo, size: 3}]}\n", []string{"line 5: requests.mix[0].size: 3 is out of range [8, 61440]"}},
		{"phase over players", strings.Replace(minimal, "5s}", "5s, players: 11}", 1), []string{"line 4: phases[0].players: 11 is more than the 10 players of the scenario"}},
		{"phase pct", strings.Replace(minimal, "5s}", "5s, players: 150%}", 1), []string{`line 4: phases[0].players: want a percentage from 0% to 100%, got "150%"`}},
		{"no players in phases", strings.Replace(minimal, "5s}", "5s, players: 0}", 1), []string{"line 4: phases: no phase has any players"}},
		{"dup phase", minimal + "  - {name: steady, duration: 1s}\n", []string{`line 5: phases[1]: the name "steady" is used twice (first at line 4)`}},
		{"bad name", strings.Replace(minimal, "name: t", "name: Big Test", 1), []string{`line 1: name: "Big Test" is not a name: use up to 64 lower-case letters, digits, '.', '_' and '-'`}},
		{"dup cell", minimal + "cells: [a, a]\n", []string{`line 5: cells[1]: "a" is listed twice (first at line 5)`}},
		{"unknown key", minimal + "colour: blue\n", []string{`line 5: scenario: unknown key "colour" (known: cells, connect, login, name, phases, players, requests, session)`}},
		{"merge bad key", minimal + "  - <<: {name: x, duraton: 1s}\n", []string{`line 5: phases[1]: unknown key "duraton" (did you mean "duration"?)`}},
		{"merge not mapping", minimal + "  - {<<: 3, duration: 1s}\n", []string{`line 5: phases[1]: <<: want an anchored mapping, got "3"`}},
		{"second doc", minimal + "---\nname: u\n", []string{"line 5: a second YAML document (---): a scenario is one document"}},
		{"several at once", "name: t\nplayers: -1\nlogin: x\nphases: 3\n", []string{
			"line 2: players: -1 is out of range [1, 10000000]",
			`line 3: login: "x" is not one of password, token`,
			`line 4: phases: want a list of phases, got "3"`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.doc)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func requestableNames() string {
	var names []string
	for _, oi := range protocol.Ops() {
		if requestable(oi.Op) {
			names = append(names, oi.Name)
		}
	}
	return strings.Join(names, ", ")
}

func TestParseMergeKeys(t *testing.T) {
	doc := `name: merge
players: 4
requests:
  rate: 1
  mix:
    - &base {op: echo, weight: 2, payload: {a: 1}}
    - <<: *base
      name: echo2
      weight: 5
phases:
  - &ph {name: one, duration: 2s}
  - {<<: *ph, name: two}
`
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Requests.Mix
	if len(m) != 2 || m[1].Name != "echo2" || m[1].Weight != 5 || m[1].Opcode != protocol.OpEcho || string(m[1].Payload) != `{"a":1}` {
		t.Errorf("merged mix entry: got %+v", m)
	}
	if len(s.Phases) != 2 || s.Phases[1].Name != "two" || s.Phases[1].Duration != 2*time.Second {
		t.Errorf("merged phase: got %+v", s.Phases)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Each level doubles the values: 2^30 once expanded.
	var b strings.Builder
	b.WriteString(minimal + "requests:\n  rate: 1\n  mix:\n    - op: echo\n      payload:\n        a0: &a0 [x, x]\n")
	for i := 1; i <= 30; i++ {
		b.WriteString("        a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
	}
	done := make(chan []string)
	go func() { done <- problems(t, b.String()) }()
	select {
	case got := <-done:
		if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "once aliases are expanded") {
			t.Errorf("alias bomb: got %q, want the expansion limit reported", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("alias bomb: Parse did not return")
	}
}

// TestGolden checks the full error text for each bad file in testdata/:
// what `livecell loadtest` prints. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, Overrides{})
			got := "ok\n"
			if err != nil {
				got = err.Error() + "\n"
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestExampleScenariosParse(t *testing.T) {
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example scenarios in loadtest/scenarios: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f, Overrides{}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml"), Overrides{}); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("missing file: got %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, Overrides{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: got %v", err)
	}
}

func TestPlayersAtAndActive(t *testing.T) {
	s := &Scenario{Players: 100, Phases: []Phase{
		{Name: "up", Duration: 10 * time.Second, From: 0, To: 100},
		{Name: "hold", Duration: 10 * time.Second, From: 100, To: 100},
		{Name: "down", Duration: 10 * time.Second, From: 100, To: 50},
		{Name: "step", Duration: 10 * time.Second, From: 80, To: 80},
	}}
	for _, tt := range []struct {
		at   time.Duration
		want float64
	}{
		{-time.Second, 0}, {0, 0}, {5 * time.Second, 50}, {15 * time.Second, 100}, {25 * time.Second, 75}, {35 * time.Second, 80}, {time.Hour, 80},
	} {
		if got := s.PlayersAt(tt.at); got != tt.want {
			t.Errorf("PlayersAt(%s) = %g, want %g", tt.at, got, tt.want)
		}
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	for _, tt := range []struct {
		n    int
		want []Span
	}{
		{0, []Span{{0, 40 * time.Second}}},
		{49, []Span{{sec(4.9), 40 * time.Second}}},
		// Joins at 6 s, leaves when the ramp down passes 60 (at 28 s), is
		// back when the last phase steps to 80.
		{60, []Span{{6 * time.Second, 28 * time.Second}, {30 * time.Second, 40 * time.Second}}},
		{99, []Span{{sec(9.9), sec(20.2)}}},
		{100, nil},
	} {
		if got := s.Active(tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Active(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	// At any instant the number of active players matches the schedule.
	for at := time.Duration(0); at < 40*time.Second; at += 700 * time.Millisecond {
		active := 0
		for n := range 100 {
			for _, sp := range s.Active(n) {
				if at >= sp.From && at < sp.To {
					active++
				}
			}
		}
		want := s.PlayersAt(at)
		if diff := float64(active) - want; diff < -1 || diff > 1 {
			t.Errorf("at %s: %d players active, schedule wants %g", at, active, want)
		}
	}
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {9 * time.Second, 0}, {10 * time.Second, 1}, {35 * time.Second, 3}, {time.Hour, 3}} {
		if got := s.PhaseAt(tt.at); got != tt.want {
			t.Errorf("PhaseAt(%s) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

func TestPickFollowsWeights(t *testing.T) {
	r := Requests{Mix: []Op{{Name: "a", Weight: 1}, {Name: "zero", Weight: 0}, {Name: "b", Weight: 3}}}
	rnd := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for range 40_000 {
		counts[r.Pick(rnd.Float64()).Name]++
	}
	if counts["zero"] != 0 {
		t.Errorf("a zero-weight entry was picked %d times", counts["zero"])
	}
	if a, b := counts["a"], counts["b"]; a < 9_000 || a > 11_000 || b < 29_000 || b > 31_000 {
		t.Errorf("picks a=%d b=%d, want about 10000 and 30000", a, b)
	}
}

func TestRangePick(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	r := Range{Min: time.Second, Max: 2 * time.Second}
	for range 1000 {
		if d := r.Pick(rnd); d < r.Min || d > r.Max {
			t.Fatalf("Pick = %s, outside %s", d, r)
		}
	}
	if d := (Range{Min: time.Second, Max: time.Second}).Pick(rnd); d != time.Second {
		t.Errorf("fixed range picked %s", d)
	}
}

// FuzzParse feeds arbitrary files to the parser: it must never panic or
// hang, and whatever it accepts must be a scenario the load tester can run.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/*.yaml", "../scenarios/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("Parse error %v is not an *Error with problems", err)
			}
			return
		}
		if s.Players < 1 || s.Name == "" || len(s.Phases) == 0 || s.Duration() <= 0 {
			t.Fatalf("accepted an unrunnable scenario: %+v", s)
		}
		if s.Requests.OpenLoop() || !s.Requests.Think.IsZero() {
			total := 0
			for _, op := range s.Requests.Mix {
				total += op.Weight
				if op.Payload != nil && !json.Valid(op.Payload) {
					t.Fatalf("op %s: payload %q is not JSON", op.Name, op.Payload)
				}
				if !requestable(op.Opcode) {
					t.Fatalf("op %s: opcode %s accepted", op.Name, op.Opcode.Hex())
				}
			}
			if total <= 0 {
				t.Fatalf("accepted a mix that sends nothing: %+v", s.Requests.Mix)
			}
		}
		for _, ph := range s.Phases {
			if ph.From < 0 || ph.To < 0 || ph.From > s.Players || ph.To > s.Players || ph.Duration <= 0 {
				t.Fatalf("accepted phase %+v for %d players", ph, s.Players)
			}
		}
	})
}
