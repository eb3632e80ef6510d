package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

const (
	playerA = "6f1c2a7e-5b7d-4c1e-9a53-0d2b8f6e4c11"
	playerB = "0b9d7c55-1f7e-4f5a-8d3c-2a6b9e4d7f22"
	playerC = "3c8e1a90-7d4b-4e2f-b6a1-9f0e2d3c4b55"
)

// fakeHealth is the health view the router's prober would publish, and
// applies routing tables the way router.Router does: the stricter state
// wins.
type fakeHealth struct {
	mu    sync.Mutex
	cells []router.CellHealth // State holds cells.yaml's state
	rt    router.Routing
}

func (f *fakeHealth) Cells() router.CellsResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := router.CellsResponse{Version: 1, Cells: slices.Clone(f.cells)}
	for i, c := range out.Cells {
		out.Cells[i].ConfigState = c.State
		if op, ok := f.rt.CellStates[c.ID]; ok {
			out.Cells[i].OperatorState = string(op)
			if c.State == string(config.StateActive) {
				out.Cells[i].State = string(op)
			}
		}
	}
	return out
}

func (f *fakeHealth) SetRouting(rt router.Routing) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rt = rt
}

func (f *fakeHealth) edit(fn func(cells []router.CellHealth)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.cells)
}

func threeCells() *fakeHealth {
	return &fakeHealth{cells: []router.CellHealth{
		{ID: "eu-west", Region: "europe-west1", State: "active", Gateway: "10.0.0.1:4110", Failover: []string{"us-east", "ap-south"}, Up: true, Sessions: 3, Capacity: 10, Load: 0.3},
		{ID: "us-east", Region: "us-east1", State: "active", Gateway: "10.0.0.2:4120", Failover: []string{"eu-west"}, Up: false, Capacity: 10, LastError: "connection refused"},
		{ID: "ap-south", Region: "asia-southeast1", State: "active", Gateway: "10.0.0.3:4140", Failover: []string{"us-east"}, Up: true, Capacity: 10},
	}}
}

// fakeMover moves a player in the directory, as db.Rehome would with its
// data.
type fakeMover struct {
	dir   *directory.Memory
	err   error
	calls atomic.Int32
}

func (m *fakeMover) Rehome(ctx context.Context, player, cell string) error {
	m.calls.Add(1)
	if m.err != nil {
		return m.err
	}
	return m.dir.SetHome(ctx, player, cell)
}

// flakyStore fails RecordMove while failMoves is set.
type flakyStore struct {
	*directory.Memory
	failMoves atomic.Bool
}

func (f *flakyStore) RecordMove(ctx context.Context, player, from, to string) (directory.Move, error) {
	if f.failMoves.Load() {
		return directory.Move{}, apierr.New(apierr.Unavailable, "database down")
	}
	return f.Memory.RecordMove(ctx, player, from, to)
}

type env struct {
	srv    *httptest.Server
	ctl    *control.Server
	dir    *directory.Memory
	store  *flakyStore
	health *fakeHealth
	mover  *fakeMover
	signer *token.Signer
}

type envOption func(*control.Deps)

func withoutMover(d *control.Deps) { d.Mover = nil }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ks, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.NewMemory()
	e := &env{dir: dir, store: &flakyStore{Memory: dir}, health: threeCells(), mover: &fakeMover{dir: dir}, signer: signer}
	deps := control.Deps{Directory: e.store, Health: e.health, Verifier: token.NewVerifier(ks, nil), Mover: e.mover}
	for _, o := range opts {
		o(&deps)
	}
	s, err := control.New(control.Config{}, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.ctl = s
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) serverToken(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, _, err := e.signer.IssueServer("ops/alice", scopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) client(tok string) *control.Client {
	return &control.Client{BaseURL: e.srv.URL, Token: func(context.Context) (string, error) { return tok, nil }}
}

func (e *env) admin(t *testing.T) *control.Client {
	return e.client(e.serverToken(t, control.ScopeAdmin))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, what string, err error, want apierr.Code) {
	t.Helper()
	if got := apierr.CodeOf(err); got != want {
		t.Errorf("%s: got code %s (%v), want %s", what, got, err, want)
	}
}

func TestDirectoryRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.serverToken(t, control.ScopeDirectoryWrite))

	if _, err := c.Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Fatalf("Home of a new player: got %v, want code %s", err, apierr.UnknownPlayer)
	}
	// Upper case in, canonical lower case stored: accounts and the router
	// must agree on one spelling.
	if err := c.SetHome(ctx(t), strings.ToUpper(playerA), "eu-west"); err != nil {
		t.Fatalf("SetHome: %v", err)
	}
	got, err := c.Home(ctx(t), playerA)
	if err != nil || got != "eu-west" {
		t.Fatalf("Home after SetHome: got %q, %v; want eu-west", got, err)
	}
	if got, _ := e.dir.Home(ctx(t), playerA); got != "eu-west" {
		t.Fatalf("directory holds %q for the player, want eu-west", got)
	}
	// A retried write gets the same answer.
	if err := c.SetHome(ctx(t), playerA, "eu-west"); err != nil {
		t.Errorf("repeated SetHome: %v", err)
	}
	// Moving a player is a rehome, never this write: a cell cannot take
	// another cell's player.
	wantCode(t, "SetHome to another cell", c.SetHome(ctx(t), playerA, "ap-south"), apierr.Conflict)
	if got, _ := e.dir.Home(ctx(t), playerA); got != "eu-west" {
		t.Errorf("after a refused move the directory holds %q, want eu-west", got)
	}
}

// TestSetHomeRefusesCellsThatTakeNoNewPlayers: a router's view may be
// stale; the control plane has the last word on placement.
func TestSetHomeRefusesCellsThatTakeNoNewPlayers(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.serverToken(t, control.ScopeDirectoryWrite))
	if _, err := e.admin(t).Drain(ctx(t), "ap-south", control.DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "SetHome in a drained cell", c.SetHome(ctx(t), playerA, "ap-south"), apierr.Draining)
	e.health.edit(func(cells []router.CellHealth) { cells[1].State = string(config.StateDisabled) })
	wantCode(t, "SetHome in a disabled cell", c.SetHome(ctx(t), playerA, "us-east"), apierr.Draining)
	if _, err := e.dir.Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Errorf("refused placements homed the player: %v", err)
	}
	// A down but active cell still takes the players it signs up itself:
	// the client reached it, whatever the control plane's probe says.
	e.health.edit(func(cells []router.CellHealth) { cells[1].State = string(config.StateActive) })
	if err := c.SetHome(ctx(t), playerA, "us-east"); err != nil {
		t.Errorf("SetHome in an active cell the probes find down: %v", err)
	}
}

func TestSetHomeRefused(t *testing.T) {
	e := newEnv(t)
	playerTok, _, err := e.signer.IssuePlayer(playerA, "eu-west", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, token, player, cell string
		want                      apierr.Code
	}{
		{"no credential", "", playerA, "eu-west", apierr.Unauthenticated},
		{"player token", playerTok, playerA, "eu-west", apierr.InvalidToken},
		{"server token without scope", e.serverToken(t, "ops"), playerA, "eu-west", apierr.PermissionDenied},
		{"admin scope is not the directory scope", e.serverToken(t, control.ScopeAdmin), playerA, "eu-west", apierr.PermissionDenied},
		{"garbage token", "not-a-jwt", playerA, "eu-west", apierr.InvalidToken},
		{"unknown cell", e.serverToken(t, control.ScopeDirectoryWrite), playerA, "mars", apierr.BadRequest},
		{"player not a UUID", e.serverToken(t, control.ScopeDirectoryWrite), "alice", "eu-west", apierr.BadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(tt.token)
			if tt.token == "" {
				c.Token = nil
			}
			wantCode(t, "SetHome", c.SetHome(ctx(t), tt.player, tt.cell), tt.want)
			if cell, err := e.dir.Home(ctx(t), playerA); err == nil {
				t.Fatalf("refused write still homed the player to %q", cell)
			}
		})
	}
	// Without a client-side credential the request is still sent and
	// refused by the server, never silently accepted.
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+control.PathDirectory+playerA, strings.NewReader(`{"cell":"eu-west"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous PUT: status %d, want 401", resp.StatusCode)
	}
}

func TestCellsServesHealthView(t *testing.T) {
	e := newEnv(t)
	got, err := (&control.Client{BaseURL: e.srv.URL}).Cells(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Cells) != 3 {
		t.Fatalf("got %d cells, want 3", len(got.Cells))
	}
	eu, us := got.Cells[0], got.Cells[1]
	if eu.ID != "eu-west" || !eu.Up || eu.Sessions != 3 || eu.Load != 0.3 {
		t.Errorf("eu-west: got %+v, want up with 3 sessions and load 0.3", eu)
	}
	if us.ID != "us-east" || us.Up || us.LastError != "connection refused" {
		t.Errorf("us-east: got %+v, want down with its last error", us)
	}
}

func TestOverrides(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	pin, err := admin.SetOverride(ctx(t), strings.ToUpper(playerA), control.OverrideRequest{Kind: "pin", Cell: "ap-south", Reason: "QA on the canary"})
	if err != nil {
		t.Fatalf("pin: %v", err)
	}
	if pin.PlayerID != playerA || pin.Kind != "pin" || pin.Cell != "ap-south" || pin.By != "ops/alice" || pin.At.IsZero() {
		t.Errorf("pin: got %+v", pin)
	}
	if _, err := admin.SetOverride(ctx(t), playerB, control.OverrideRequest{Kind: "quarantine", Reason: "chargebacks"}); err != nil {
		t.Fatalf("quarantine: %v", err)
	}
	if _, err := admin.SetOverride(ctx(t), playerC, control.OverrideRequest{Kind: "quarantine", Cell: "us-east"}); err != nil {
		t.Fatalf("quarantine in a cell: %v", err)
	}
	list, err := admin.Overrides(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range list {
		ids = append(ids, o.PlayerID+":"+o.Kind+":"+o.Cell)
	}
	want := []string{playerB + ":quarantine:", playerC + ":quarantine:us-east", playerA + ":pin:ap-south"}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Overrides = %v, want %v", ids, want)
	}

	// Routers get them grouped, applied as a router.Routing.
	rt, err := (&control.Client{BaseURL: e.srv.URL}).Routing(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantRT := map[string]router.Override{
		playerA: {Kind: router.OverridePin, Cell: "ap-south"},
		playerB: {Kind: router.OverrideQuarantine},
		playerC: {Kind: router.OverrideQuarantine, Cell: "us-east"},
	}
	if len(rt.Overrides) != len(wantRT) {
		t.Errorf("routing overrides: got %v, want %v", rt.Overrides, wantRT)
	}
	for p, o := range wantRT {
		if rt.Overrides[p] != o {
			t.Errorf("routing override of %s: got %+v, want %+v", p, rt.Overrides[p], o)
		}
	}

	if err := admin.ClearOverride(ctx(t), playerA); err != nil {
		t.Errorf("clear: %v", err)
	}
	wantCode(t, "clearing twice", admin.ClearOverride(ctx(t), playerA), apierr.NotFound)
	if list, _ := admin.Overrides(ctx(t)); len(list) != 2 {
		t.Errorf("after clearing one: %d overrides, want 2", len(list))
	}
}

func TestOverridesRefused(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	for _, tt := range []struct {
		name   string
		c      *control.Client
		player string
		req    control.OverrideRequest
		want   apierr.Code
	}{
		{"directory scope", e.client(e.serverToken(t, control.ScopeDirectoryWrite)), playerA, control.OverrideRequest{Kind: "quarantine"}, apierr.PermissionDenied},
		{"no credential", &control.Client{BaseURL: e.srv.URL}, playerA, control.OverrideRequest{Kind: "quarantine"}, apierr.Unauthenticated},
		{"player not a UUID", admin, "bob", control.OverrideRequest{Kind: "quarantine"}, apierr.BadRequest},
		{"unknown kind", admin, playerA, control.OverrideRequest{Kind: "ban"}, apierr.BadRequest},
		{"pin without a cell", admin, playerA, control.OverrideRequest{Kind: "pin"}, apierr.BadRequest},
		{"pin to an unknown cell", admin, playerA, control.OverrideRequest{Kind: "pin", Cell: "mars"}, apierr.BadRequest},
		{"quarantine in an unknown cell", admin, playerA, control.OverrideRequest{Kind: "quarantine", Cell: "mars"}, apierr.BadRequest},
		{"reason too long", admin, playerA, control.OverrideRequest{Kind: "quarantine", Reason: strings.Repeat("x", 300)}, apierr.BadRequest},
	} {
		_, err := tt.c.SetOverride(ctx(t), tt.player, tt.req)
		wantCode(t, tt.name, err, tt.want)
	}
	if list, err := e.dir.Overrides(ctx(t)); err != nil || len(list) != 0 {
		t.Errorf("refused overrides were stored: %v, %v", list, err)
	}
	_, err := e.client(e.serverToken(t, control.ScopeDirectoryWrite)).Overrides(ctx(t))
	wantCode(t, "listing with the directory scope", err, apierr.PermissionDenied)
}

// TestRoutingETag: pollers that send back the ETag get 304 until the
// table changes, and the Client serves its last table from that.
func TestRoutingETag(t *testing.T) {
	e := newEnv(t)
	var statuses []int
	var mu sync.Mutex
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.ctl.Handler().ServeHTTP(rec, r)
		mu.Lock()
		statuses = append(statuses, rec.Code)
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer counting.Close()
	c := &control.Client{BaseURL: counting.URL}
	for range 3 {
		if _, err := c.RoutingTable(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.admin(t).SetOverride(ctx(t), playerA, control.OverrideRequest{Kind: "quarantine"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.RoutingTable(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Quarantined, []string{playerA}) {
		t.Errorf("after a change: quarantined %v, want [%s]", got.Quarantined, playerA)
	}
	again, err := c.RoutingTable(ctx(t))
	if err != nil || !slices.Equal(again.Quarantined, []string{playerA}) {
		t.Errorf("from a 304: got %+v, %v; want the cached table", again, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{200, 304, 304, 200, 304}; !slices.Equal(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
}

func TestDrain(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	st, err := admin.Drain(ctx(t), "eu-west", control.DrainRequest{Batch: 50, IntervalMS: 250, Reason: "kernel upgrade"})
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// us-east is down, so the failover list's next cell takes the players.
	if st.Cell != "eu-west" || st.State != "draining" || st.Batch != 50 || st.IntervalMS != 250 || st.Target != "ap-south" || st.By != "ops/alice" {
		t.Errorf("Drain: got %+v", st)
	}
	cells, err := admin.Cells(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := cells.Cells[0]; c.State != "draining" || c.OperatorState != "draining" || c.ConfigState != "active" {
		t.Errorf("eu-west in /v1/cells: state %q operator %q config %q, want draining/draining/active", c.State, c.OperatorState, c.ConfigState)
	}
	o, err := admin.Orders(ctx(t), "eu-west", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := control.DrainOrder{Batch: 50, IntervalMS: 250, TargetCell: "ap-south", TargetGateway: "10.0.0.3:4140"}
	if o.State != "draining" || o.Drain != want {
		t.Errorf("orders: got %+v (drain %+v), want draining with %+v", o, o.Drain, want)
	}
	// The target follows health: us-east back up comes first again.
	e.health.edit(func(cells []router.CellHealth) { cells[1].Up = true })
	if o, _ := admin.Orders(ctx(t), "eu-west", 0); o.Drain.TargetCell != "us-east" {
		t.Errorf("orders after us-east recovered: got %+v, want target us-east", o.Drain)
	}
	// Other cells are untouched.
	if o, _ := admin.Orders(ctx(t), "ap-south", 0); o.State != "active" || o.Drain != (control.DrainOrder{}) {
		t.Errorf("orders of ap-south: got %+v, want active without a drain", o)
	}
	// Changing the rate keeps the drain.
	if st2, err := admin.Drain(ctx(t), "eu-west", control.DrainRequest{Batch: 500}); err != nil || st2.Batch != 500 || !st2.Since.Equal(st.Since) {
		t.Errorf("re-drain: got %+v, %v; want batch 500 since %v", st2, err, st.Since)
	}
	if err := admin.Undrain(ctx(t), "eu-west"); err != nil {
		t.Fatalf("Undrain: %v", err)
	}
	wantCode(t, "undrain twice", admin.Undrain(ctx(t), "eu-west"), apierr.NotFound)
	if o, _ := admin.Orders(ctx(t), "eu-west", 0); o.State != "active" || o.Drain != (control.DrainOrder{}) {
		t.Errorf("orders after undrain: got %+v, want active", o)
	}
}

// TestDrainFromCellsYAML: a cell draining in cells.yaml gets drain orders
// at the default rate.
func TestDrainFromCellsYAML(t *testing.T) {
	e := newEnv(t)
	e.health.edit(func(cells []router.CellHealth) { cells[2].State = string(config.StateDraining) })
	o, err := e.admin(t).Orders(ctx(t), "ap-south", 0)
	if err != nil {
		t.Fatal(err)
	}
	if o.Drain.Batch != control.DefaultDrainBatch || o.Drain.IntervalMS != 1000 || o.Drain.TargetCell != "" {
		t.Errorf("got %+v, want the default rate and no target (us-east is down)", o.Drain)
	}
}

func TestDrainRefused(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	for _, tt := range []struct {
		name string
		c    *control.Client
		cell string
		req  control.DrainRequest
		want apierr.Code
	}{
		{"directory scope", e.client(e.serverToken(t, control.ScopeDirectoryWrite)), "eu-west", control.DrainRequest{}, apierr.PermissionDenied},
		{"unknown cell", admin, "mars", control.DrainRequest{}, apierr.NotFound},
		{"negative batch", admin, "eu-west", control.DrainRequest{Batch: -1}, apierr.BadRequest},
		{"huge batch", admin, "eu-west", control.DrainRequest{Batch: 1_000_000}, apierr.BadRequest},
		{"interval too short", admin, "eu-west", control.DrainRequest{IntervalMS: 1}, apierr.BadRequest},
		{"negative interval", admin, "eu-west", control.DrainRequest{IntervalMS: -5}, apierr.BadRequest},
		{"interval too long", admin, "eu-west", control.DrainRequest{IntervalMS: 3_600_000}, apierr.BadRequest},
	} {
		_, err := tt.c.Drain(ctx(t), tt.cell, tt.req)
		wantCode(t, tt.name, err, tt.want)
	}
	if st, _ := e.dir.CellStates(ctx(t)); len(st) != 0 {
		t.Errorf("refused drains were stored: %+v", st)
	}
	// The last cell that takes new players cannot be drained.
	for _, id := range []string{"eu-west", "us-east"} {
		if _, err := admin.Drain(ctx(t), id, control.DrainRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := admin.Drain(ctx(t), "ap-south", control.DrainRequest{})
	wantCode(t, "draining the last active cell", err, apierr.Conflict)
}

func TestRehome(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	if err := e.dir.SetHome(ctx(t), playerA, "eu-west"); err != nil {
		t.Fatal(err)
	}
	res, err := admin.Rehome(ctx(t), strings.ToUpper(playerA), control.RehomeRequest{Cell: "ap-south"})
	if err != nil {
		t.Fatalf("Rehome: %v", err)
	}
	if res.PlayerID != playerA || res.From != "eu-west" || res.To != "ap-south" || !res.Moved || res.Seq == 0 {
		t.Errorf("Rehome: got %+v", res)
	}
	if home, _ := e.dir.Home(ctx(t), playerA); home != "ap-south" {
		t.Errorf("home after rehome: %q, want ap-south", home)
	}
	// The old cell's orders carry the redirect marker, with the gateway to
	// send the player to; so do the new cell's (a move in).
	for _, cell := range []string{"eu-west", "ap-south"} {
		o, err := admin.Orders(ctx(t), cell, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Moves) != 1 || o.Moves[0].PlayerID != playerA || o.Moves[0].From != "eu-west" || o.Moves[0].To != "ap-south" ||
			o.Moves[0].ToGateway != "10.0.0.3:4140" || o.Next != res.Seq {
			t.Errorf("orders of %s: got %+v", cell, o)
		}
		if o, _ := admin.Orders(ctx(t), cell, o.Next); len(o.Moves) != 0 || o.Next != res.Seq {
			t.Errorf("orders of %s after the cursor: got %+v, want no moves, next %d", cell, o, res.Seq)
		}
	}
	if o, _ := admin.Orders(ctx(t), "us-east", 0); len(o.Moves) != 0 {
		t.Errorf("orders of an uninvolved cell: %+v", o.Moves)
	}
	// Rehoming to where the player lives is a no-op.
	if res, err := admin.Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "ap-south"}); err != nil || res.Moved || res.Seq != 0 {
		t.Errorf("rehome in place: got %+v, %v; want not moved", res, err)
	}
	if n := e.mover.calls.Load(); n != 1 {
		t.Errorf("mover called %d times, want 1", n)
	}
}

func TestRehomeRefused(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	if err := e.dir.SetHome(ctx(t), playerA, "eu-west"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Drain(ctx(t), "ap-south", control.DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		c      *control.Client
		player string
		req    control.RehomeRequest
		want   apierr.Code
	}{
		{"directory scope", e.client(e.serverToken(t, control.ScopeDirectoryWrite)), playerA, control.RehomeRequest{Cell: "us-east"}, apierr.PermissionDenied},
		{"player not a UUID", admin, "x", control.RehomeRequest{Cell: "us-east"}, apierr.BadRequest},
		{"unknown cell", admin, playerA, control.RehomeRequest{Cell: "mars"}, apierr.BadRequest},
		{"unknown from", admin, playerA, control.RehomeRequest{Cell: "us-east", From: "mars"}, apierr.BadRequest},
		{"no cell", admin, playerA, control.RehomeRequest{}, apierr.BadRequest},
		{"unknown player", admin, playerB, control.RehomeRequest{Cell: "us-east"}, apierr.UnknownPlayer},
		{"draining target", admin, playerA, control.RehomeRequest{Cell: "ap-south"}, apierr.Conflict},
	} {
		_, err := tt.c.Rehome(ctx(t), tt.player, tt.req)
		wantCode(t, tt.name, err, tt.want)
	}
	e.mover.err = apierr.New(apierr.Unavailable, "serialization failure, retries exhausted")
	_, err := admin.Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "us-east"})
	wantCode(t, "mover failing", err, apierr.Unavailable)
	if home, _ := e.dir.Home(ctx(t), playerA); home != "eu-west" {
		t.Errorf("after refused rehomes the player lives in %q, want eu-west", home)
	}
	if moves, _ := e.dir.Moves(ctx(t), "", 0, 0); len(moves) != 0 {
		t.Errorf("refused rehomes left markers: %+v", moves)
	}

	noMover := newEnv(t, withoutMover)
	_, err = noMover.admin(t).Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "us-east"})
	wantCode(t, "control plane without a database", err, apierr.Unavailable)
}

// TestRehomeMarkerRepair: the data moved but the marker write failed; the
// operator is told, and rehoming again with From records it.
func TestRehomeMarkerRepair(t *testing.T) {
	e := newEnv(t)
	admin := e.admin(t)
	if err := e.dir.SetHome(ctx(t), playerA, "eu-west"); err != nil {
		t.Fatal(err)
	}
	e.store.failMoves.Store(true)
	_, err := admin.Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "us-east"})
	wantCode(t, "marker failing", err, apierr.Unavailable)
	if msg := apierr.MessageOf(err); !strings.Contains(msg, "from=eu-west") {
		t.Errorf("message %q does not say how to repair", msg)
	}
	if home, _ := e.dir.Home(ctx(t), playerA); home != "us-east" {
		t.Errorf("the move itself stands: home %q, want us-east", home)
	}
	e.store.failMoves.Store(false)
	res, err := admin.Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "us-east", From: "eu-west"})
	if err != nil || res.Moved || res.From != "eu-west" || res.Seq == 0 {
		t.Errorf("repair: got %+v, %v; want the marker recorded without moving", res, err)
	}
	if o, _ := admin.Orders(ctx(t), "eu-west", 0); len(o.Moves) != 1 || o.Moves[0].To != "us-east" {
		t.Errorf("old cell's orders after repair: %+v", o.Moves)
	}
	if n := e.mover.calls.Load(); n != 1 {
		t.Errorf("mover called %d times, want 1 (the repair moves nothing)", n)
	}
}

func TestOrdersPaging(t *testing.T) {
	e := newEnv(t)
	for i := range directory.MaxMovesPage + 5 {
		from, to := "eu-west", "us-east"
		if i%2 == 1 {
			from, to = to, from
		}
		if _, err := e.dir.RecordMove(ctx(t), playerA, from, to); err != nil {
			t.Fatal(err)
		}
	}
	c := &control.Client{BaseURL: e.srv.URL}
	first, err := c.Orders(ctx(t), "eu-west", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Moves) != directory.MaxMovesPage || !first.More || first.Next != first.Moves[len(first.Moves)-1].Seq {
		t.Fatalf("first page: %d moves, more %v, next %d", len(first.Moves), first.More, first.Next)
	}
	second, err := c.Orders(ctx(t), "eu-west", first.Next)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Moves) != 5 || second.More || second.Moves[0].Seq != first.Next+1 {
		t.Errorf("second page: %d moves, more %v, first seq %d", len(second.Moves), second.More, second.Moves[0].Seq)
	}
}

func TestCodedErrorsForBadRequests(t *testing.T) {
	e := newEnv(t)
	admin := "Bearer " + e.serverToken(t, control.ScopeAdmin)
	for _, tt := range []struct {
		method, path, auth, body string
		status                   int
		code                     apierr.Code
	}{
		{http.MethodGet, control.PathDirectory + "not-a-uuid", "", "", 400, apierr.BadRequest},
		{http.MethodGet, control.PathDirectory + playerB, "", "", 404, apierr.UnknownPlayer},
		{http.MethodDelete, control.PathDirectory + playerB, "", "", 405, apierr.MethodNotAllowed},
		{http.MethodPost, control.PathCells, "", "", 405, apierr.MethodNotAllowed},
		{http.MethodPost, control.PathRouting, "", "", 405, apierr.MethodNotAllowed},
		{http.MethodGet, "/v1/nothing", "", "", 404, apierr.NotFound},
		{http.MethodGet, "/v1/cells/mars/orders", "", "", 404, apierr.NotFound},
		{http.MethodGet, "/v1/cells/eu-west/orders?after=-1", "", "", 400, apierr.BadRequest},
		{http.MethodGet, "/v1/cells/eu-west/orders?after=x", "", "", 400, apierr.BadRequest},
		{http.MethodGet, "/v1/cells/eu-west/orders?after=1&after=2", "", "", 400, apierr.BadRequest},
		{http.MethodGet, "/v1/cells/eu-west/orders?since=1", "", "", 400, apierr.BadRequest},
		{http.MethodGet, "/v1/cells/eu-west/drain", admin, "", 405, apierr.MethodNotAllowed},
		{http.MethodPut, "/v1/cells/eu-west/drain", admin, `{"batch":`, 400, apierr.BadRequest},
		{http.MethodPut, "/v1/cells/eu-west/drain", admin, `{"batch":"ten"}`, 400, apierr.BadRequest},
		{http.MethodPut, "/v1/cells/eu-west/drain", admin, `{"bacth":10}`, 400, apierr.BadRequest},
		{http.MethodPut, "/v1/cells/eu-west/drain", admin, `{}{}`, 400, apierr.BadRequest},
		{http.MethodPut, "/v1/overrides/" + playerA, admin, `{"kind":"pin","cell":"eu-west","extra":1}`, 400, apierr.BadRequest},
		{http.MethodPut, "/v1/overrides/" + playerA, admin, `{"kind":"pin","cell":"eu-west","reason":"` + strings.Repeat("x", 5000) + `"}`, 413, apierr.PayloadTooLarge},
		{http.MethodPost, "/v1/players/" + playerA + "/rehome", admin, `[]`, 400, apierr.BadRequest},
		{http.MethodGet, "/v1/players/" + playerA + "/rehome", admin, "", 405, apierr.MethodNotAllowed},
		{http.MethodGet, "/v1/overrides", "", "", 401, apierr.Unauthenticated},
	} {
		req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader(tt.body))
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code    apierr.Code
			Message string
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || body.Code != tt.code || body.Message == "" {
			t.Errorf("%s %s %.40s: got %d %s %q, want %d %s", tt.method, tt.path, tt.body, resp.StatusCode, body.Code, body.Message, tt.status, tt.code)
		}
	}
	// Nothing of that was stored.
	if st, _ := e.dir.CellStates(ctx(t)); len(st) != 0 {
		t.Errorf("bad requests stored cell states: %+v", st)
	}
	if o, _ := e.dir.Overrides(ctx(t)); len(o) != 0 {
		t.Errorf("bad requests stored overrides: %+v", o)
	}
}

// TestRefreshLoop: a change made through another control plane replica
// (straight in the shared store) reaches the routing table within a
// refresh interval.
func TestRefreshLoop(t *testing.T) {
	dir := directory.NewMemory()
	ks, _ := token.GenerateKeySet()
	health := threeCells()
	s, err := control.New(control.Config{RefreshInterval: 5 * time.Millisecond}, control.Deps{Directory: dir, Health: health, Verifier: token.NewVerifier(ks, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx(t)); err == nil {
		t.Error("second Start: got nil, want an error")
	}
	if _, err := dir.SetCellState(ctx(t), directory.CellState{Cell: "us-east", State: "draining", DrainBatch: 1, DrainInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if health.Cells().Cells[1].State == "draining" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain written by another replica never reached the health view")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Stop(ctx(t)); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := s.Stop(ctx(t)); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestClientTransportFailures(t *testing.T) {
	// A proxy answering HTML for a dead upstream, then nothing at all: both
	// must read as "control plane unavailable", which the router's cache
	// rides out.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	if _, err := (&control.Client{BaseURL: proxy.URL}).Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Home through a failing proxy: got %v, want code unavailable", err)
	}
	if _, err := (&control.Client{BaseURL: proxy.URL}).Routing(ctx(t)); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Routing through a failing proxy: got %v, want code unavailable", err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	if _, err := (&control.Client{BaseURL: url}).Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Home of a stopped control plane: got %v, want code unavailable", err)
	}
	if _, err := (&control.Client{BaseURL: url}).Routing(ctx(t)); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Routing of a stopped control plane: got %v, want code unavailable", err)
	}
	if err := (&control.Client{BaseURL: url}).SetHome(ctx(t), playerA, "eu-west"); apierr.CodeOf(err) != apierr.Unauthenticated {
		t.Errorf("SetHome without a credential: got %v, want code unauthenticated before any request", err)
	}
	failing := &control.Client{BaseURL: url, Token: func(context.Context) (string, error) { return "", errors.New("no key") }}
	if err := failing.Undrain(ctx(t), "eu-west"); apierr.CodeOf(err) != apierr.Unauthenticated {
		t.Errorf("Undrain with a failing credential: got %v, want unauthenticated", err)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	_, err := control.New(control.Config{}, control.Deps{})
	if err == nil || !strings.Contains(err.Error(), "Directory, Health, Verifier") {
		t.Fatalf("New with no deps: got %v, want an error naming Directory, Health, Verifier", err)
	}
}

func TestMovesFeed(t *testing.T) {
	e := newEnv(t)
	c := &control.Client{BaseURL: e.srv.URL}
	start, err := c.Moves(ctx(t), -1)
	if err != nil || start.Next != 0 || len(start.Moves) != 0 {
		t.Fatalf("from now on an empty feed: %+v, %v; want next 0", start, err)
	}
	if err := e.dir.SetHome(ctx(t), playerA, "eu-west"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin(t).Rehome(ctx(t), playerA, control.RehomeRequest{Cell: "us-east"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Moves(ctx(t), start.Next)
	if err != nil || len(got.Moves) != 1 || got.Moves[0].PlayerID != playerA || got.Moves[0].To != "us-east" || got.Moves[0].ToGateway != "10.0.0.2:4120" {
		t.Fatalf("moves after %d: %+v, %v", start.Next, got, err)
	}
	if now, err := c.Moves(ctx(t), -1); err != nil || now.Next != got.Next || len(now.Moves) != 0 {
		t.Errorf("from now after a move: %+v, %v; want next %d and no moves", now, err, got.Next)
	}
	if again, _ := c.Moves(ctx(t), got.Next); len(again.Moves) != 0 || again.Next != got.Next {
		t.Errorf("after the last move: %+v", again)
	}
}
