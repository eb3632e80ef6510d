package router

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
)

func TestResolveNewByRTT(t *testing.T) {
	tests := []struct {
		name     string
		sessions map[string]int
		drain    string // cell an operator drains
		rtt      string
		hint     string
		want     string
	}{
		{name: "nearest by id", rtt: "us-east:12,eu-west:80", want: "us-east"},
		{name: "nearest by region", rtt: "europe-north1:15,us-east1:40", want: "eu-north"},
		{name: "RTTs beat the hint", rtt: "eu-west:5,us-east:100", hint: "us-east", want: "eu-west"},
		// eu-west (capacity 100) at 95%: 10 + 75 ms penalty > eu-north's 30.
		{name: "headroom spills to the next-nearest", sessions: map[string]int{"eu-west": 95}, rtt: "eu-west:10,eu-north:30", want: "eu-north"},
		{name: "full nearest cell is skipped", sessions: map[string]int{"eu-west": 100}, rtt: "eu-west:10,us-east:90", want: "us-east"},
		{name: "statically draining cell is skipped", rtt: "ap-south:1,us-east:90", want: "us-east"},
		{name: "operator-drained cell is skipped", drain: "eu-west", rtt: "eu-west:1,eu-north:50", want: "eu-north"},
		{name: "unknown keys are ignored", rtt: "mars-1:1,eu-north:50", want: "eu-north"},
		{name: "only unknown keys: hint", rtt: "mars-1:1", hint: "us-east", want: "us-east"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			for id, n := range tt.sessions {
				f.status.up(id, n)
			}
			f.round(t, 1)
			if tt.drain != "" {
				f.loadRouting(t, Routing{CellStates: map[string]config.CellState{tt.drain: config.StateDraining}})
			}
			q := url.Values{"rtt": {tt.rtt}}
			if tt.hint != "" {
				q.Set("region_hint", tt.hint)
			}
			rec := get(f.r.Handler(), "GET", "/v1/resolve?"+q.Encode())
			var res Resolution
			if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			if res.HomeCell != tt.want || res.Placement != PlacementNew {
				t.Errorf("got %s (%s), want %s (new)", res.HomeCell, res.Placement, tt.want)
			}
		})
	}
}

// TestResolveRTTsAreIgnoredForKnownPlayers: a player with a home keeps it,
// whatever latencies the client reports.
func TestResolveRTTsAreIgnoredForKnownPlayers(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	res, err := f.r.Resolve(context.Background(), ResolveRequest{PlayerID: playerEU, RTTs: []placement.RTT{{Key: "us-east", MS: 1}}})
	if err != nil || res.HomeCell != "eu-west" || res.Placement != PlacementExisting {
		t.Errorf("got %+v, %v; want eu-west (existing)", res, err)
	}
}

func TestResolveRefusesBadRTTs(t *testing.T) {
	many := make([]string, placement.MaxRTTs+1)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i%30) + string(rune('a'+i%26)) + strings.Repeat("y", i/26) + ":1"
	}
	tests := []struct{ name, rtt string }{
		{"negative", "eu-west:-3"},
		{"absurd", "eu-west:3600000"},
		{"not a number", "eu-west:fast"},
		{"NaN", "eu-west:NaN"},
		{"bad cell id", "eu west:3"},
		{"SQL in the key", "eu'; DROP TABLE players;--:3"},
		{"duplicate", "eu-west:3,eu-west:4"},
		{"too many entries", strings.Join(many, ",")},
		{"no value", "eu-west"},
		{"over the query limit", strings.Repeat("a", maxQueryLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.round(t, 1)
			rec := get(f.r.Handler(), "GET", "/v1/resolve?"+url.Values{"rtt": {tt.rtt}}.Encode())
			var body httpapi.ErrorBody
			if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Code != apierr.BadRequest {
				t.Fatalf("got %d %s, want 400 bad_request", rec.Code, rec.Body)
			}
			if strings.Contains(body.Message, "DROP") || len(body.Message) > 200 {
				t.Errorf("message echoes the input: %q", body.Message)
			}
		})
	}
	// The Go API enforces the entry bound too.
	f := newFixture(t, Config{})
	f.round(t, 1)
	_, err := f.r.Resolve(context.Background(), ResolveRequest{RTTs: make([]placement.RTT, placement.MaxRTTs+1)})
	if apierr.CodeOf(err) != apierr.BadRequest {
		t.Errorf("Resolve with %d RTTs: %v, want bad_request", placement.MaxRTTs+1, err)
	}
}

func TestOverrides(t *testing.T) {
	tests := []struct {
		name      string
		override  Override
		entryFor  string // the player the entry is for; default player
		player    string
		down      []string
		want      string
		wantPlace Placement
		wantCode  apierr.Code
	}{
		{name: "pin", override: Override{Kind: OverridePin, Cell: "eu-north"}, player: playerEU, want: "eu-north", wantPlace: PlacementPinned},
		{name: "pin to a draining cell", override: Override{Kind: OverridePin, Cell: "ap-south"}, player: playerEU, want: "ap-south", wantPlace: PlacementPinned},
		{name: "pin of a player the directory does not know", override: Override{Kind: OverridePin, Cell: "us-east"}, player: playerUnknown, want: "us-east", wantPlace: PlacementPinned},
		{name: "pinned cell down: routed as usual", override: Override{Kind: OverridePin, Cell: "eu-north"}, player: playerEU, down: []string{"eu-north"}, want: "eu-west", wantPlace: PlacementExisting},
		{name: "pinned cell unknown: routed as usual", override: Override{Kind: OverridePin, Cell: "mars-1"}, player: playerEU, want: "eu-west", wantPlace: PlacementExisting},
		{name: "quarantine without a cell", override: Override{Kind: OverrideQuarantine}, player: playerEU, wantCode: apierr.Quarantined},
		{name: "quarantine of an unknown player", override: Override{Kind: OverrideQuarantine}, player: playerUnknown, wantCode: apierr.Quarantined},
		{name: "quarantine cell", override: Override{Kind: OverrideQuarantine, Cell: "eu-north"}, player: playerEU, want: "eu-north", wantPlace: PlacementQuarantine},
		{name: "quarantine cell down: never released", override: Override{Kind: OverrideQuarantine, Cell: "eu-north"}, player: playerEU, down: []string{"eu-north"}, wantCode: apierr.NoHealthyCell},
		{name: "other players unaffected", override: Override{Kind: OverrideQuarantine}, entryFor: playerEU, player: playerUS, want: "us-east", wantPlace: PlacementExisting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{FailThreshold: 1})
			f.round(t, 1)
			for _, id := range tt.down {
				f.status.down(id)
			}
			f.round(t, 1)
			target := tt.entryFor
			if target == "" {
				target = tt.player
			}
			f.loadRouting(t, Routing{Overrides: map[string]Override{target: tt.override}})
			res, err := f.resolve(t, tt.player, "")
			if tt.wantCode != "" {
				if got := apierr.CodeOf(err); got != tt.wantCode {
					t.Fatalf("got %+v, %v; want code %s", res, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.HomeCell != tt.want || res.Placement != tt.wantPlace || res.PlayerID != tt.player {
				t.Errorf("got %+v, want %s (%s) for %s", res, tt.want, tt.wantPlace, tt.player)
			}
		})
	}
}

// TestOverridesSkipTheDirectory: an override is answered from memory, so
// it works while the directory is down.
func TestOverridesSkipTheDirectory(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	f.loadRouting(t, Routing{Overrides: map[string]Override{playerEU: {Kind: OverridePin, Cell: "us-east"}}})
	f.dir.err = errors.New("connection refused")
	if res, err := f.resolve(t, playerEU, ""); err != nil || res.HomeCell != "us-east" {
		t.Errorf("pinned player, directory down: got %+v, %v; want us-east", res, err)
	}
	if _, err := f.resolve(t, playerUS, ""); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("unpinned player, directory down: got %v, want unavailable", err)
	}
}

func TestOperatorCellStates(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	cells := testCells(t)
	cells.Cells[2].State = config.StateDisabled // us-east: cells.yaml is stricter than a drain
	f.r.SetCells(cells)
	f.loadRouting(t, Routing{CellStates: map[string]config.CellState{
		"eu-west": config.StateDraining,
		"us-east": config.StateDraining,
	}})

	// eu-west's players go to its failover list: us-east is disabled, so
	// eu-north.
	res, err := f.resolve(t, playerEU, "")
	if err != nil || res.HomeCell != "eu-north" || res.Placement != PlacementFailover || res.FailoverFrom != "eu-west" {
		t.Errorf("player of a drained cell: got %+v, %v; want eu-north (failover from eu-west)", res, err)
	}
	// New players avoid it.
	if res, err := f.resolve(t, "", "eu-west"); err != nil || res.HomeCell != "eu-north" {
		t.Errorf("new player hinting a drained cell: got %+v, %v; want eu-north", res, err)
	}
	want := map[string][3]string{ // state, config_state, operator_state
		"eu-west":  {"draining", "active", "draining"},
		"eu-north": {"active", "active", ""},
		"us-east":  {"disabled", "disabled", "draining"},
		"ap-south": {"draining", "draining", ""},
	}
	for _, c := range f.r.Cells().Cells {
		if got := [3]string{c.State, c.ConfigState, c.OperatorState}; got != want[c.ID] {
			t.Errorf("cell %s: got state/config/operator %v, want %v", c.ID, got, want[c.ID])
		}
	}

	// The control plane going away keeps the drain in force.
	f.routing.set(Routing{}, errors.New("connection refused"))
	f.r.routingRound(context.Background())
	if res, _ := f.resolve(t, playerEU, ""); res.HomeCell != "eu-north" {
		t.Errorf("control plane down: got %s, want the drain kept (eu-north)", res.HomeCell)
	}
	if got := metricValue(t, f.r.m.routingLoads.WithLabelValues("error")); got != 1 {
		t.Errorf("routing load errors: got %v, want 1", got)
	}
	// Undrained: back home.
	f.loadRouting(t, Routing{})
	if res, _ := f.resolve(t, playerEU, ""); res.HomeCell != "eu-west" || res.Placement != PlacementExisting {
		t.Errorf("after undrain: got %+v, want eu-west (existing)", res)
	}
	if got := metricValue(t, f.r.m.routingLoads.WithLabelValues("ok")); got != 2 {
		t.Errorf("routing loads: got %v, want 2", got)
	}
}

// TestStartLoadsRouting: the first answer after Start already applies the
// control plane's table, and a control plane down at start is no error.
func TestStartLoadsRouting(t *testing.T) {
	f := newFixture(t, Config{})
	f.routing.set(Routing{Overrides: map[string]Override{playerEU: {Kind: OverrideQuarantine}}}, nil)
	ctx := context.Background()
	if err := f.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.r.Stop(ctx)
	if _, err := f.resolve(t, playerEU, ""); apierr.CodeOf(err) != apierr.Quarantined {
		t.Errorf("right after Start: got %v, want quarantined", err)
	}

	down := newFixture(t, Config{})
	down.routing.set(Routing{}, errors.New("connection refused"))
	if err := down.r.Start(ctx); err != nil {
		t.Fatalf("Start with the control plane down: %v", err)
	}
	defer down.r.Stop(ctx)
	if res, err := down.resolve(t, playerEU, ""); err != nil || res.HomeCell != "eu-west" {
		t.Errorf("control plane down at start: got %+v, %v; want eu-west", res, err)
	}
}
