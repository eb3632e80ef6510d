package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accounts/pgstore"
	"github.com/livecell/livecell/cell/accountsapi"
	mpworld "github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// opsWorld is an in-process deployment wired as separate processes would
// be: a control plane (HTTP), a router reading it (HTTP), and three cells
// each running accounts and a real gateway, recording homes at the control
// plane and following its orders.
type opsWorld struct {
	cells      *config.Cells
	cellByID   map[string]*cell.Cell
	controlURL string
	routerURL  string
	admin      *control.Client
	pool       *pgxpool.Pool // nil unless on PostgreSQL
}

const opsCellsYAML = `version: 1
cells:
  - id: eu-west
    region: europe-west1
    gateway: 127.0.0.1:%d
    api: 127.0.0.1:%d
    capacity: 1000
    failover: [us-east]
  - id: us-east
    region: us-east1
    gateway: 127.0.0.1:%d
    api: 127.0.0.1:%d
    capacity: 1000
    failover: [eu-west]
  - id: ap-south
    region: asia-southeast1
    gateway: 127.0.0.1:%d
    api: 127.0.0.1:%d
    capacity: 1000
    failover: [us-east]
`

func freePorts(t *testing.T, n int) []any {
	t.Helper()
	out := make([]any, n)
	for i := range out {
		addr, err := mpworld.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		var port int
		if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &port); err != nil {
			t.Fatalf("free port %q: %v", addr, err)
		}
		out[i] = port
	}
	return out
}

// startOpsWorld starts the world; with database it keeps accounts and the
// directory in PostgreSQL, as production does, so a rehome moves real rows.
func startOpsWorld(t *testing.T, database bool) *opsWorld {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an in-process deployment")
	}
	cells, err := config.Parse(fmt.Appendf(nil, opsCellsYAML, freePorts(t, 6)...))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	keys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	w := &opsWorld{cells: cells, cellByID: map[string]*cell.Cell{}}

	var (
		dir   control.Store
		homes router.HomeLookup
		mover control.Mover
		acc   accounts.Store
	)
	if database {
		w.pool = dbtest.Pool(t)
		if err := db.MigrateSchemas(ctx, w.pool, schemas()); err != nil {
			t.Fatal(err)
		}
		pg := directory.NewPostgres(w.pool)
		dir, homes, mover, acc = pg, pg, dbMover{pool: w.pool}, pgstore.New(w.pool)
	} else {
		mem := directory.NewMemory()
		dir, homes, acc = mem, mem, memstore.New()
	}

	// The control plane, on a port known before the cells start.
	controlAddr, err := mpworld.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w.controlURL = "http://" + controlAddr
	fast := router.Config{Cells: cells, ProbeInterval: 50 * time.Millisecond, FailThreshold: 2, RiseThreshold: 1, RoutingInterval: 50 * time.Millisecond}
	health, err := router.New(fast, router.Deps{Logger: log, Metrics: prometheus.NewRegistry(), Homes: homes})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := control.New(control.Config{}, control.Deps{Logger: log, Directory: dir, Health: health, Verifier: token.NewVerifier(keys, nil), Mover: mover})
	if err != nil {
		t.Fatal(err)
	}

	for _, cl := range cells.Cells {
		writer, err := controlDirectory(w.controlURL, keys, "cell/"+cl.ID)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cell.Config{
			Cell: cl, Cells: cells, Services: []string{cell.ServiceAccounts, cell.ServiceGateway},
			Accounts: accounts.Config{PasswordAuth: true, Argon2: cheapArgon, RateLimit: accounts.RateLimitConfig{Disabled: true}},
		}
		cfg.Gateway.DrainGrace = 100 * time.Millisecond
		c, err := cell.New(cfg, cell.Deps{
			Logger: log, Keys: keys, AccountsStore: acc, Directory: writer,
			Control: &control.Client{BaseURL: w.controlURL, HTTP: &http.Client{Timeout: 2 * time.Second}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		w.cellByID[cl.ID] = c
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Stop(stopCtx); err != nil {
				t.Errorf("stop %s: %v", cl.ID, err)
			}
		})
	}
	if err := ctl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := health.Start(ctx); err != nil {
		t.Fatal(err)
	}
	csrv, err := serveHTTP(controlAddr, ctl.Handler())
	if err != nil {
		t.Fatal(err)
	}

	// A router reading the control plane over HTTP, as `livecell router
	// --control` does.
	// The production TTL: the move feed, not expiry, must update a
	// rehomed player's cached home.
	rhomes, rsrc, err := controlReader(w.controlURL, 30*time.Second, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	go rhomes.FollowMoves(ctx, rsrc, 50*time.Millisecond)
	r, err := router.New(fast, router.Deps{Logger: log, Metrics: prometheus.NewRegistry(), Homes: rhomes, Routing: rsrc})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rsrv, err := serveHTTP("127.0.0.1:0", r.Handler())
	if err != nil {
		t.Fatal(err)
	}
	w.routerURL = "http://" + rsrv.addr()
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rsrv.shutdown(stopCtx)
		_ = r.Stop(stopCtx)
		_ = csrv.shutdown(stopCtx)
		_ = health.Stop(stopCtx)
		_ = ctl.Stop(stopCtx)
	})

	signer, err := token.NewSigner(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.admin = &control.Client{BaseURL: w.controlURL, Token: (&mintedToken{signer: signer, subject: "operator/test", scopes: []string{control.ScopeAdmin}, ttl: time.Hour}).Token}
	eventually(t, "every cell up at the control plane", func() bool {
		cs, err := w.admin.Cells(ctx)
		if err != nil {
			return false
		}
		for _, c := range cs.Cells {
			if !c.Up {
				return false
			}
		}
		return true
	})
	return w
}

// player is a registered player with an open session.
type player struct {
	id, username string
	auth         accountsapi.AuthResponse
	conn         *gameclient.Conn
}

func (w *opsWorld) register(t *testing.T, cellID, username string) *player {
	t.Helper()
	cl, _ := w.cells.Cell(cellID)
	auth, err := (&accountsapi.Client{BaseURL: "http://" + cl.API}).Register(t.Context(), accountsapi.RegisterRequest{Username: username, Password: "correct horse battery"})
	if err != nil {
		t.Fatalf("register %s at %s: %v", username, cellID, err)
	}
	return &player{id: auth.PlayerID, username: username, auth: auth}
}

func (w *opsWorld) connect(t *testing.T, p *player, cellID string) {
	t.Helper()
	cl, _ := w.cells.Cell(cellID)
	conn, err := gameclient.Dial(t.Context(), cl.Gateway, gameclient.Options{Token: p.auth.AccessToken, Client: "ops-test"})
	if err != nil {
		t.Fatalf("connect %s to %s: %v", p.username, cellID, err)
	}
	t.Cleanup(func() { conn.Close() })
	p.conn = conn
}

func (w *opsWorld) resolve(t *testing.T, query string) (router.Resolution, error) {
	t.Helper()
	var res router.Resolution
	err := httpapi.Do(t.Context(), nil, httpapi.Call{Op: "resolve", Peer: "router", Method: http.MethodGet, URL: w.routerURL + "/v1/resolve?" + query, Out: &res})
	return res, err
}

func waitReconnect(t *testing.T, p *player) (protocol.Reconnect, time.Time) {
	t.Helper()
	select {
	case r := <-p.conn.Reconnects():
		return r, time.Now()
	case <-time.After(15 * time.Second):
		t.Fatalf("%s got no reconnect", p.username)
	}
	return protocol.Reconnect{}, time.Time{}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrainCell: an operator drains eu-west. New players are placed
// elsewhere, its connected players are told in batches to reconnect to its
// failover cell (us-east) with a resume token that works there, players of
// other cells see nothing, and undraining brings the cell back.
func TestDrainCell(t *testing.T) {
	w := startOpsWorld(t, false)
	ctx := t.Context()
	var eu []*player
	for i := range 4 {
		p := w.register(t, "eu-west", fmt.Sprintf("eu-player-%d", i))
		w.connect(t, p, "eu-west")
		eu = append(eu, p)
	}
	bystander := w.register(t, "ap-south", "ap-player")
	w.connect(t, bystander, "ap-south")

	start := time.Now()
	st, err := w.admin.Drain(ctx, "eu-west", control.DrainRequest{Batch: 2, IntervalMS: 300, Reason: "test"})
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if st.Target != "us-east" {
		t.Errorf("drain target %q, want us-east", st.Target)
	}
	usEast, _ := w.cells.Cell("us-east")
	// Arrival times are taken as frames arrive, one waiter per player.
	type arrival struct {
		r  protocol.Reconnect
		at time.Time
	}
	arrivals := make([]arrival, len(eu))
	var wg sync.WaitGroup
	for i, p := range eu {
		wg.Go(func() {
			select {
			case r := <-p.conn.Reconnects():
				arrivals[i] = arrival{r, time.Now()}
			case <-time.After(15 * time.Second):
			}
		})
	}
	wg.Wait()
	var first, last time.Time
	for i, p := range eu {
		r, at := arrivals[i].r, arrivals[i].at
		if at.IsZero() {
			t.Fatalf("%s got no reconnect", p.username)
		}
		if r.Reason != "draining" || r.Cell != "us-east" || r.Gateway != usEast.Gateway || r.ResumeToken == "" {
			t.Errorf("%s: got reconnect %+v, want draining to us-east at %s with a resume token", p.username, r, usEast.Gateway)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		// The resume token is good at the failover cell.
		moved, err := gameclient.Dial(ctx, r.Gateway, gameclient.Options{ResumeToken: r.ResumeToken})
		if err != nil {
			t.Fatalf("%s: resume at us-east: %v", p.username, err)
		}
		if wl := moved.Welcome(); wl.Cell != "us-east" || wl.PlayerID != p.id {
			t.Errorf("%s: welcome %+v, want player %s at us-east", p.username, wl, p.id)
		}
		moved.Close()
		p.conn.Close() // as a client does once its new session is up
	}
	// Four players in batches of two, 300 ms apart.
	if gap := last.Sub(first); gap < 200*time.Millisecond {
		t.Errorf("all players told within %v: want batches at least one interval apart", gap)
	}
	t.Logf("drain: first reconnect %v after the command, last %v", first.Sub(start), last.Sub(start))

	// The drained cell refuses new sessions: clients resolve again.
	cl, _ := w.cells.Cell("eu-west")
	_, err = gameclient.Dial(ctx, cl.Gateway, gameclient.Options{Token: eu[0].auth.AccessToken})
	if apierr.CodeOf(err) != apierr.Draining {
		t.Errorf("new session at the drained cell: %v, want draining", err)
	}
	// Routers send its players to the failover cell, and new players
	// elsewhere even when eu-west is the nearest.
	eventually(t, "the router to apply the drain", func() bool {
		res, err := w.resolve(t, "player="+eu[0].id)
		return err == nil && res.HomeCell == "us-east" && res.Placement == router.PlacementFailover
	})
	res, err := w.resolve(t, url.Values{"rtt": {"eu-west:5,us-east:90,ap-south:40"}}.Encode())
	if err != nil || res.HomeCell != "ap-south" {
		t.Errorf("new player near eu-west: got %+v, %v; want ap-south (next nearest)", res, err)
	}
	// Registration at the drained cell is refused by the control plane.
	_, err = (&accountsapi.Client{BaseURL: "http://" + cl.API}).Register(ctx, accountsapi.RegisterRequest{Username: "latecomer", Password: "correct horse battery"})
	if err == nil {
		t.Error("registering at a drained cell succeeded")
	}
	// The state is visible, reported by the cell itself too.
	eventually(t, "the cell to report draining", func() bool {
		cs, err := w.admin.Cells(ctx)
		if err != nil {
			return false
		}
		c := cs.Cells[0]
		return c.State == "draining" && c.OperatorState == "draining" && c.ReportedState == "draining" && c.Sessions == 0
	})
	// Players of other cells saw nothing.
	if _, err := bystander.conn.Ping(ctx); err != nil {
		t.Errorf("ap-south player: %v", err)
	}
	select {
	case r := <-bystander.conn.Reconnects():
		t.Errorf("ap-south player told to move: %+v", r)
	default:
	}

	if err := w.admin.Undrain(ctx, "eu-west"); err != nil {
		t.Fatalf("undrain: %v", err)
	}
	eventually(t, "eu-west to take sessions again", func() bool {
		c, err := gameclient.Dial(ctx, cl.Gateway, gameclient.Options{Token: eu[1].auth.AccessToken})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	eventually(t, "the router to send eu-west's players home", func() bool {
		res, err := w.resolve(t, "player="+eu[0].id)
		return err == nil && res.HomeCell == "eu-west" && res.Placement == router.PlacementExisting
	})
}

// TestRehomePlayer moves a connected player's data from eu-west to us-east
// in PostgreSQL. Its open session is sent to us-east with a resume token
// that works there; the old cell answers its stale credentials with
// player_moved; the router, the directory and the player's rows agree.
func TestRehomePlayer(t *testing.T) {
	w := startOpsWorld(t, true)
	ctx := t.Context()
	p := w.register(t, "eu-west", "wanderer")
	w.connect(t, p, "eu-west")
	other := w.register(t, "eu-west", "homebody")
	w.connect(t, other, "eu-west")

	// The router caches the player's home (for 30 s).
	if res, err := w.resolve(t, "player="+p.id); err != nil || res.HomeCell != "eu-west" {
		t.Fatalf("resolve before the move: %+v, %v", res, err)
	}
	res, err := w.admin.Rehome(ctx, p.id, control.RehomeRequest{Cell: "us-east"})
	if err != nil {
		t.Fatalf("rehome: %v", err)
	}
	if res.From != "eu-west" || res.To != "us-east" || !res.Moved {
		t.Errorf("rehome: %+v", res)
	}
	var home string
	if err := w.pool.QueryRow(ctx, `SELECT home_cell FROM players WHERE id = $1`, p.id).Scan(&home); err != nil || home != "us-east" {
		t.Errorf("players.home_cell = %q, %v; want us-east (the data moved)", home, err)
	}

	usEast, _ := w.cells.Cell("us-east")
	r, _ := waitReconnect(t, p)
	if r.Reason != "rehome" || r.Cell != "us-east" || r.Gateway != usEast.Gateway || r.ResumeToken == "" {
		t.Fatalf("reconnect %+v, want rehome to us-east with a resume token", r)
	}
	select {
	case <-p.conn.Done():
	case <-time.After(10 * time.Second):
		t.Error("the old cell kept the moved player's session open")
	}
	moved, err := gameclient.Dial(ctx, r.Gateway, gameclient.Options{ResumeToken: r.ResumeToken})
	if err != nil {
		t.Fatalf("resume at the new cell: %v", err)
	}
	if wl := moved.Welcome(); wl.Cell != "us-east" || wl.PlayerID != p.id {
		t.Errorf("welcome %+v, want the player at us-east", wl)
	}
	moved.Close()

	// The redirect marker: the old cell refuses the stale access token.
	euWest, _ := w.cells.Cell("eu-west")
	_, err = gameclient.Dial(ctx, euWest.Gateway, gameclient.Options{Token: p.auth.AccessToken})
	if apierr.CodeOf(err) != apierr.PlayerMoved {
		t.Errorf("stale credentials at the old cell: %v, want player_moved", err)
	}
	// The router answers the new home; signing in again there yields
	// credentials for it.
	eventually(t, "the router to answer the new home", func() bool {
		res, err := w.resolve(t, "player="+p.id)
		return err == nil && res.HomeCell == "us-east" && res.Placement == router.PlacementExisting
	})
	auth, err := (&accountsapi.Client{BaseURL: "http://" + usEast.API}).Login(ctx, accountsapi.LoginRequest{Username: "wanderer", Password: "correct horse battery"})
	if err != nil || auth.HomeCell != "us-east" {
		t.Fatalf("login at the new cell: %+v, %v; want home us-east", auth, err)
	}
	fresh, err := gameclient.Dial(ctx, usEast.Gateway, gameclient.Options{Token: auth.AccessToken})
	if err != nil {
		t.Fatalf("connect with fresh credentials: %v", err)
	}
	fresh.Close()
	// The other player of the old cell was left alone.
	if _, err := other.conn.Ping(ctx); err != nil {
		t.Errorf("other player of the old cell: %v", err)
	}
	// Moving back lifts the marker.
	if _, err := w.admin.Rehome(ctx, p.id, control.RehomeRequest{Cell: "eu-west"}); err != nil {
		t.Fatal(err)
	}
	auth, err = (&accountsapi.Client{BaseURL: "http://" + euWest.API}).Login(ctx, accountsapi.LoginRequest{Username: "wanderer", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old cell to take the player back", func() bool {
		c, err := gameclient.Dial(ctx, euWest.Gateway, gameclient.Options{Token: auth.AccessToken})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestOverridesEndToEnd: a quarantined player is thrown out and refused
// everywhere; a pinned player is sent to, and admitted by, the pinned cell.
func TestOverridesEndToEnd(t *testing.T) {
	w := startOpsWorld(t, false)
	ctx := t.Context()
	villain := w.register(t, "eu-west", "villain")
	w.connect(t, villain, "eu-west")
	tester := w.register(t, "eu-west", "tester")

	if _, err := w.admin.SetOverride(ctx, villain.id, control.OverrideRequest{Kind: "quarantine", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-villain.conn.Done():
		var ae *apierr.Error
		if err := villain.conn.Err(); !errors.As(err, &ae) || ae.Code != apierr.Quarantined {
			t.Errorf("session ended with %v, want quarantined", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the quarantined player's session stayed open")
	}
	eventually(t, "the router to refuse the quarantined player", func() bool {
		_, err := w.resolve(t, "player="+villain.id)
		return apierr.CodeOf(err) == apierr.Quarantined
	})
	euWest, _ := w.cells.Cell("eu-west")
	if _, err := gameclient.Dial(ctx, euWest.Gateway, gameclient.Options{Token: villain.auth.AccessToken}); apierr.CodeOf(err) != apierr.Quarantined {
		t.Errorf("quarantined player connecting: %v, want quarantined", err)
	}

	if _, err := w.admin.SetOverride(ctx, tester.id, control.OverrideRequest{Kind: "pin", Cell: "ap-south", Reason: "canary"}); err != nil {
		t.Fatal(err)
	}
	var res router.Resolution
	eventually(t, "the router to apply the pin", func() bool {
		var err error
		res, err = w.resolve(t, "player="+tester.id)
		return err == nil && res.HomeCell == "ap-south" && res.Placement == router.PlacementPinned
	})
	// The pinned cell admits the player although their token names
	// eu-west.
	eventually(t, "ap-south to admit the pinned player", func() bool {
		c, err := gameclient.Dial(ctx, res.Gateway, gameclient.Options{Token: tester.auth.AccessToken})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Welcome().Cell == "ap-south"
	})

	if err := w.admin.ClearOverride(ctx, villain.id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the quarantine to lift", func() bool {
		c, err := gameclient.Dial(ctx, euWest.Gateway, gameclient.Options{Token: villain.auth.AccessToken})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
