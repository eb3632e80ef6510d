package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

const waitLong = 10 * time.Second

// fakeControl serves orders and a routing table the test edits. Moves are
// paged like the control plane's, two per answer.
type fakeControl struct {
	mu      sync.Mutex
	state   string
	drain   control.DrainOrder
	moves   []control.MoveEntry
	routing control.RoutingResponse
	err     error
	afters  []int64
}

func (f *fakeControl) Orders(_ context.Context, cell string, after int64) (control.Orders, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, after)
	if f.err != nil {
		return control.Orders{}, f.err
	}
	o := control.Orders{Cell: cell, State: f.state, Drain: f.drain, Next: after}
	for _, mv := range f.moves {
		if mv.Seq > after && len(o.Moves) < 2 {
			o.Moves = append(o.Moves, mv)
			o.Next = mv.Seq
		}
	}
	o.More = len(o.Moves) == 2
	return o, nil
}

func (f *fakeControl) RoutingTable(context.Context) (control.RoutingResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return control.RoutingResponse{}, f.err
	}
	return f.routing, nil
}

func (f *fakeControl) edit(fn func(*fakeControl)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// redirectCall records one Redirect and what where answered for a set of
// sessions.
type redirectCall struct {
	batch   int
	pause   time.Duration
	answers map[string]protocol.Reconnect // "player@home" → reconnect
}

// fakeSessions is a gateway with a fixed set of sessions (player → home).
type fakeSessions struct {
	mu        sync.Mutex
	sessions  map[string]string
	draining  []bool
	redirects []redirectCall
	moved     []string // player>cell:reason:gateway
	closed    []string // player:reason
	redirectC chan struct{}
}

func newSessions(s map[string]string) *fakeSessions {
	return &fakeSessions{sessions: s, redirectC: make(chan struct{}, 16)}
}

func (f *fakeSessions) SetDraining(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.draining = append(f.draining, on)
}

func (f *fakeSessions) Redirect(_ context.Context, batch int, pause time.Duration, where func(player, home string) (protocol.Reconnect, bool)) (int, error) {
	f.mu.Lock()
	call := redirectCall{batch: batch, pause: pause, answers: map[string]protocol.Reconnect{}}
	told := 0
	for p, home := range f.sessions {
		if r, ok := where(p, home); ok {
			call.answers[p+"@"+home] = r
			told++
		}
	}
	f.redirects = append(f.redirects, call)
	f.mu.Unlock()
	f.redirectC <- struct{}{}
	return told, nil
}

func (f *fakeSessions) MovePlayer(player string, r protocol.Reconnect, resumeHome string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[player]; !ok {
		return false
	}
	delete(f.sessions, player)
	f.moved = append(f.moved, player+">"+r.Cell+":"+r.Reason+":"+r.Gateway+":"+resumeHome)
	return true
}

func (f *fakeSessions) ClosePlayer(player, reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[player]; !ok {
		return false
	}
	delete(f.sessions, player)
	f.closed = append(f.closed, player+":"+reason)
	return true
}

func (f *fakeSessions) snapshot() (draining []bool, redirects []redirectCall, moved, closed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.draining), slices.Clone(f.redirects), slices.Clone(f.moved), slices.Clone(f.closed)
}

func newAgent(t *testing.T, ctl *fakeControl, sess *fakeSessions, cfg Config) *Agent {
	t.Helper()
	cfg.Cell = "eu-west"
	a, err := New(cfg, Deps{Control: ctl, Sessions: sess})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}, Deps{Control: &fakeControl{}, Sessions: newSessions(nil)}); err == nil {
		t.Error("New without a cell: got nil error")
	}
	if _, err := New(Config{Cell: "c"}, Deps{}); err == nil {
		t.Error("New without deps: got nil error")
	}
}

func waitRedirect(t *testing.T, s *fakeSessions) {
	t.Helper()
	select {
	case <-s.redirectC:
	case <-time.After(waitLong):
		t.Fatal("no Redirect")
	}
}

func TestDrain(t *testing.T) {
	ctl := &fakeControl{state: "active"}
	sess := newSessions(map[string]string{"own-1": "eu-west", "own-2": "eu-west", "guest": "us-east"})
	a := newAgent(t, ctl, sess, Config{Interval: 5 * time.Millisecond, RetellAfter: 50 * time.Millisecond})
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	if a.Draining() {
		t.Fatal("draining before any drain order")
	}

	// Draining without a target: new sessions refused, nobody told yet.
	ctl.edit(func(f *fakeControl) { f.state, f.drain = "draining", control.DrainOrder{Batch: 2, IntervalMS: 250} })
	eventually(t, "drain to apply", a.Draining)
	time.Sleep(30 * time.Millisecond)
	if d, r, _, _ := sess.snapshot(); !slices.Equal(d, []bool{true}) || len(r) != 0 {
		t.Fatalf("without a target: SetDraining %v, %d redirects; want [true] and none", d, len(r))
	}

	// A target appears: players are told, at the order's rate.
	ctl.edit(func(f *fakeControl) { f.drain.TargetCell, f.drain.TargetGateway = "us-east", "10.0.0.2:4120" })
	waitRedirect(t, sess)
	_, r, _, _ := sess.snapshot()
	call := r[0]
	if call.batch != 2 || call.pause != 250*time.Millisecond {
		t.Errorf("Redirect batch %d pause %v, want 2 and 250ms", call.batch, call.pause)
	}
	own := protocol.Reconnect{Reason: ReasonDraining, Cell: "us-east", Gateway: "10.0.0.2:4120"}
	want := map[string]protocol.Reconnect{"own-1@eu-west": own, "own-2@eu-west": own, "guest@us-east": {Reason: ReasonDraining}}
	for k, v := range want {
		if call.answers[k] != v {
			t.Errorf("%s: got %+v, want %+v", k, call.answers[k], v)
		}
	}
	// Those still here are told again after RetellAfter.
	waitRedirect(t, sess)
	eventually(t, "drain_redirects_total to count two passes", func() bool { return testutil.ToFloat64(a.m.redirected) >= 6 })

	// Undrained: sessions admitted again, no more redirects.
	ctl.edit(func(f *fakeControl) { f.state, f.drain = "active", control.DrainOrder{} })
	eventually(t, "undrain", func() bool { return !a.Draining() })
	time.Sleep(120 * time.Millisecond)
	for len(sess.redirectC) > 0 {
		<-sess.redirectC
	}
	time.Sleep(120 * time.Millisecond)
	if len(sess.redirectC) != 0 {
		t.Error("Redirect called after undrain")
	}
	if d, _, _, _ := sess.snapshot(); !slices.Equal(d, []bool{true, false}) {
		t.Errorf("SetDraining calls %v, want [true false]", d)
	}
	if got := testutil.ToFloat64(a.m.draining); got != 0 {
		t.Errorf("draining gauge %v, want 0", got)
	}
}

func TestRehomeMarkers(t *testing.T) {
	now := time.Now()
	ctl := &fakeControl{state: "active", moves: []control.MoveEntry{
		{Seq: 1, PlayerID: "p-old", From: "eu-west", To: "us-east", ToGateway: "gw-us", At: now.Add(-48 * time.Hour)},
		{Seq: 2, PlayerID: "p-away", From: "eu-west", To: "us-east", ToGateway: "gw-us", At: now},
		{Seq: 3, PlayerID: "p-back", From: "eu-west", To: "ap-south", ToGateway: "gw-ap", At: now},
		{Seq: 4, PlayerID: "p-in", From: "us-east", To: "eu-west", ToGateway: "gw-eu", At: now},
		{Seq: 5, PlayerID: "p-back", From: "ap-south", To: "eu-west", ToGateway: "gw-eu", At: now},
	}}
	sess := newSessions(map[string]string{"p-old": "eu-west", "p-away": "eu-west", "p-in": "us-east", "p-stay": "eu-west"})
	a := newAgent(t, ctl, sess, Config{})
	a.poll(context.Background())

	// Every page was read.
	if ctl.afters[len(ctl.afters)-1] != 4 || a.cursor != 5 {
		t.Errorf("cursor %d after asking %v, want 5 after paging", a.cursor, ctl.afters)
	}
	_, _, moved, _ := sess.snapshot()
	if want := []string{"p-away>us-east:rehome:gw-us:us-east"}; !slices.Equal(moved, want) {
		t.Errorf("moved %v, want %v (an expired move touches no session)", moved, want)
	}
	err := a.Refuse("p-away")
	if apierr.CodeOf(err) != apierr.PlayerMoved || !strings.Contains(apierr.MessageOf(err), "us-east") {
		t.Errorf("Refuse(p-away) = %v, want player_moved naming us-east", err)
	}
	for _, p := range []string{"p-old", "p-back", "p-in", "p-stay"} {
		if err := a.Refuse(p); err != nil {
			t.Errorf("Refuse(%s) = %v, want nil", p, err)
		}
	}
	if got := testutil.ToFloat64(a.m.markers); got != 1 {
		t.Errorf("markers gauge %v, want 1 (p-away; p-old expired and was dropped)", got)
	}

	// Polling again re-applies nothing: the player now connected elsewhere
	// is not touched twice.
	sess.mu.Lock()
	sess.sessions["p-away"] = "us-east"
	sess.mu.Unlock()
	a.poll(context.Background())
	if _, _, moved, _ := sess.snapshot(); len(moved) != 1 {
		t.Errorf("second poll moved %v, want no new moves", moved)
	}
}

func TestOverrides(t *testing.T) {
	ctl := &fakeControl{state: "active", routing: control.RoutingResponse{
		Pins:            map[string][]string{"eu-west": {"pinned-here"}, "us-east": {"pinned-there"}},
		Quarantined:     []string{"villain"},
		QuarantineCells: map[string][]string{"eu-west": {"jailed-here"}, "ap-south": {"jailed-there"}},
	}}
	sess := newSessions(map[string]string{"villain": "eu-west", "jailed-there": "eu-west", "pinned-there": "eu-west", "bystander": "eu-west"})
	a := newAgent(t, ctl, sess, Config{})
	a.poll(context.Background())

	tests := []struct {
		player string
		code   apierr.Code // "" for admitted
		admits bool
	}{
		{"villain", apierr.Quarantined, false},
		{"jailed-there", apierr.Quarantined, false},
		{"jailed-here", "", true},
		{"pinned-here", "", true},
		{"pinned-there", "", false},
		{"bystander", "", false},
	}
	for _, tt := range tests {
		err := a.Refuse(tt.player)
		if tt.code == "" && err != nil || tt.code != "" && apierr.CodeOf(err) != tt.code {
			t.Errorf("Refuse(%s) = %v, want %q", tt.player, err, tt.code)
		}
		if got := a.Admits(tt.player); got != tt.admits {
			t.Errorf("Admits(%s) = %v, want %v", tt.player, got, tt.admits)
		}
	}
	_, _, _, closed := sess.snapshot()
	slices.Sort(closed)
	if want := []string{"jailed-there:quarantined", "villain:quarantined"}; !slices.Equal(closed, want) {
		t.Errorf("closed %v, want %v", closed, want)
	}

	// Lifting the quarantine lets the player in; a later quarantine
	// closes again.
	ctl.edit(func(f *fakeControl) { f.routing = control.RoutingResponse{} })
	a.poll(context.Background())
	if err := a.Refuse("villain"); err != nil {
		t.Errorf("after clearing: Refuse(villain) = %v", err)
	}
	sess.mu.Lock()
	sess.sessions["villain"] = "eu-west"
	sess.mu.Unlock()
	ctl.edit(func(f *fakeControl) { f.routing = control.RoutingResponse{Quarantined: []string{"villain"}} })
	a.poll(context.Background())
	if _, _, _, closed := sess.snapshot(); len(closed) != 3 {
		t.Errorf("closed %v, want the re-quarantined player closed again", closed)
	}
}

// A moved player pinned back to this cell by an operator is admitted.
func TestAdmittedBeatsMarker(t *testing.T) {
	ctl := &fakeControl{state: "active",
		moves:   []control.MoveEntry{{Seq: 1, PlayerID: "p", From: "eu-west", To: "us-east", At: time.Now()}},
		routing: control.RoutingResponse{Pins: map[string][]string{"eu-west": {"p"}}},
	}
	a := newAgent(t, ctl, newSessions(nil), Config{})
	a.poll(context.Background())
	if err := a.Refuse("p"); err != nil {
		t.Errorf("Refuse(pinned back) = %v, want nil", err)
	}
}

func TestControlDownKeepsOrders(t *testing.T) {
	ctl := &fakeControl{state: "draining", drain: control.DrainOrder{Batch: 1, IntervalMS: 10},
		moves:   []control.MoveEntry{{Seq: 1, PlayerID: "p", From: "eu-west", To: "us-east", At: time.Now()}},
		routing: control.RoutingResponse{Quarantined: []string{"q"}},
	}
	a := newAgent(t, ctl, newSessions(nil), Config{})
	a.poll(context.Background())
	ctl.edit(func(f *fakeControl) { f.err = errors.New("connection refused") })
	a.poll(context.Background())
	a.poll(context.Background())
	if !a.Draining() || apierr.CodeOf(a.Refuse("p")) != apierr.PlayerMoved || apierr.CodeOf(a.Refuse("q")) != apierr.Quarantined {
		t.Error("control plane down: the last orders were dropped")
	}
	if ok, bad := testutil.ToFloat64(a.m.polls.WithLabelValues("ok")), testutil.ToFloat64(a.m.polls.WithLabelValues("error")); ok != 1 || bad != 2 {
		t.Errorf("polls ok %v error %v, want 1 and 2", ok, bad)
	}
}

func TestMarkersAreBounded(t *testing.T) {
	a := newAgent(t, &fakeControl{}, newSessions(nil), Config{MarkerTTL: time.Hour})
	now := time.Now()
	var moves []control.MoveEntry
	for i := range 10 {
		at := now
		if i < 3 {
			at = now.Add(-2 * time.Hour) // expired
		}
		moves = append(moves, control.MoveEntry{Seq: int64(i + 1), PlayerID: string(rune('a' + i)), From: "eu-west", To: "us-east", At: at})
	}
	a.applyMoves(moves)
	a.mu.Lock()
	a.trimMarkersLocked()
	n := len(a.markers)
	a.mu.Unlock()
	if n != 7 {
		t.Errorf("%d markers after trimming, want 7 (the expired front dropped)", n)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
