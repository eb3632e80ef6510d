package accounts_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accounts/pgstore"
	"github.com/livecell/livecell/cell/accounts/platform/steam"
	"github.com/livecell/livecell/cell/accounts/platform/steam/steamtest"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// The service's own tests run on memstore; these run it on PostgreSQL and
// with the real Steam verifier against steamtest, the local server that
// speaks Steam's documented format.

const (
	steamAppID = 480
	steamKey   = "TESTPUBLISHERKEY"
)

// pgStore returns a migrated pgstore on a fresh schema.
func pgStore(t testing.TB) accounts.Store {
	t.Helper()
	s := pgstore.New(dbtest.Pool(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate = %v", err)
	}
	return s
}

// withSteamServer starts a steamtest server and makes the env's service use
// the real Steam verifier against it.
func withSteamServer(t testing.TB, store accounts.Store) (*steamtest.Server, func(*accounts.Config, *accounts.Deps)) {
	t.Helper()
	srv := steamtest.NewServer(steamAppID, steamKey)
	t.Cleanup(srv.Close)
	v, err := steam.New(steam.Config{BaseURL: srv.URL(), AppID: steamAppID, PublisherKey: steamKey})
	if err != nil {
		t.Fatalf("steam.New = %v", err)
	}
	return srv, func(_ *accounts.Config, d *accounts.Deps) {
		d.Steam = v
		if store != nil {
			d.Store = store
		}
	}
}

func stores() []struct {
	name string
	new  func(testing.TB) accounts.Store
} {
	return []struct {
		name string
		new  func(testing.TB) accounts.Store
	}{
		{"memstore", func(testing.TB) accounts.Store { return memstore.New() }},
		{"postgres", pgStore},
	}
}

func TestSteamLoginEndToEnd(t *testing.T) {
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			srv, mutate := withSteamServer(t, nil)
			e := newEnv(t, func(c *accounts.Config, d *accounts.Deps) {
				mutate(c, d)
				d.Store = st.new(t)
			})
			srv.AddTicket("14000000aabbccdd", steamtest.SteamID(1))
			first := e.platformLogin(accountsapi.PathSteamLogin, steamBody("14000000aabbccdd"), http.StatusCreated)
			again := e.platformLogin(accountsapi.PathSteamLogin, steamBody("14000000aabbccdd"), http.StatusOK)
			if again.PlayerID != first.PlayerID {
				t.Errorf("returning login player %s, want %s", again.PlayerID, first.PlayerID)
			}
			me := e.meOf(again.AccessToken)
			if len(me.Identities) != 1 || me.Identities[0].Subject != steamtest.SteamID(1) {
				t.Errorf("identities = %+v, want the SteamID64", me.Identities)
			}

			writes := e.store.writes.Load()
			tests := []struct {
				name       string
				body       string
				down       int
				wantStatus int
				wantCode   apierr.Code
			}{
				{"unknown ticket", steamBody("14000000ffff"), 0, 401, apierr.InvalidCredentials},
				{"sql metacharacters", steamBody(`'); DROP TABLE players;--`), 0, 400, apierr.BadRequest},
				{"steam down", steamBody("14000000aabbccdd"), http.StatusServiceUnavailable, 503, apierr.Unavailable},
				{"steam broken", steamBody("14000000aabbccdd"), http.StatusInternalServerError, 503, apierr.Unavailable},
			}
			for _, tt := range tests {
				srv.FailWith(tt.down)
				r := e.post(accountsapi.PathSteamLogin, tt.body)
				if b := r.errBody(t); r.status != tt.wantStatus || b.Code != tt.wantCode {
					t.Errorf("%s: status %d body %s, want %d %q", tt.name, r.status, r.body, tt.wantStatus, tt.wantCode)
				}
				if strings.Contains(string(r.body), steamKey) {
					t.Errorf("%s: body leaks the publisher key", tt.name)
				}
			}
			srv.FailWith(0)
			if n := e.store.writes.Load() - writes; n != 0 {
				t.Errorf("store writes by refused logins = %d, want 0", n)
			}
			if strings.Contains(e.logs.String(), steamKey) {
				t.Errorf("logs hold the publisher key")
			}
		})
	}
}

// Concurrent refreshes of one token through the service on PostgreSQL:
// exactly one wins, every other one is reuse, and the family ends revoked.
func TestConcurrentRefreshPostgres(t *testing.T) {
	e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Store = pgStore(t) })
	reg := e.register("alice", "password1")
	const n = 8
	statuses := make([]int, n)
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.post(accountsapi.PathRefresh, refreshBody(reg.RefreshToken))
			statuses[i], bodies[i] = r.status, r.body
		})
	}
	wg.Wait()
	winners := 0
	var winner accountsapi.AuthResponse
	for i, st := range statuses {
		switch st {
		case http.StatusOK:
			winners++
			winner = decodeAuth(t, response{status: st, body: bodies[i]})
		case http.StatusUnauthorized:
		default:
			t.Errorf("refresh #%d: status %d body %s, want 200 or 401", i, st, bodies[i])
		}
	}
	if winners != 1 {
		t.Fatalf("statuses %v: %d refreshes won, want exactly 1", statuses, winners)
	}
	if got := counterValueNoLabel(t, e.reg, "livecell_accounts_refresh_reuse_total"); got != n-1 {
		t.Errorf("refresh_reuse_total = %v, want %d", got, n-1)
	}
	e.refresh(winner.RefreshToken, http.StatusUnauthorized)
	// A fresh login still works: only the family was revoked.
	login := decodeAuth(t, e.post(accountsapi.PathLogin, authBody("alice", "password1")))
	e.refresh(login.RefreshToken, http.StatusOK)
}

func TestConcurrentFirstSteamLoginPostgres(t *testing.T) {
	store := pgStore(t)
	srv, mutate := withSteamServer(t, store)
	e := newEnv(t, mutate)
	srv.AddTicket("14000000aa", steamtest.SteamID(7))
	const n = 8
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = e.post(accountsapi.PathSteamLogin, steamBody("14000000aa")) })
	}
	wg.Wait()
	players := map[string]int{}
	for i, r := range results {
		if r.status != http.StatusOK && r.status != http.StatusCreated {
			t.Fatalf("login #%d: status %d body %s", i, r.status, r.body)
		}
		players[decodeAuth(t, r).PlayerID]++
	}
	if len(players) != 1 || e.store.created.Load() != 1 {
		t.Errorf("players %v, %d stored; want one player for every login", players, e.store.created.Load())
	}
}

func TestLinkConflictPostgres(t *testing.T) {
	e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Store = pgStore(t) })
	e.steam.add("bob", "s-bob", "")
	e.platformLogin(accountsapi.PathSteamLogin, steamBody("bob"), http.StatusCreated)
	alice := e.register("alice", "password1")
	writes := e.store.writes.Load()
	r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, alice.AccessToken, `{"provider":"steam","ticket":"bob"}`)
	if b := r.errBody(t); r.status != http.StatusConflict || b.Code != apierr.Conflict {
		t.Errorf("link of bob's account by alice: status %d body %s, want 409 conflict", r.status, r.body)
	}
	if n := e.store.writes.Load() - writes; n != 0 || len(e.meOf(alice.AccessToken).Identities) != 0 {
		t.Errorf("writes %d, alice's identities %d; want nothing written", n, len(e.meOf(alice.AccessToken).Identities))
	}
}

// BenchmarkSteamLoginPostgres measures a returning player's Steam login end
// to end: HTTP handler, the real Steam verifier calling steamtest over
// loopback HTTP, the identity lookup and the refresh token insert in
// PostgreSQL, and signing the access token. "serial" is the latency of one
// login; "parallel" the throughput of GOMAXPROCS concurrent callers (on
// dbtest's pool of at most 4 connections). It needs
// LIVECELL_TEST_DATABASE_URL.
func BenchmarkSteamLoginPostgres(b *testing.B) {
	store := pgStore(b)
	srv, mutate := withSteamServer(b, store)
	e := newEnv(b, func(c *accounts.Config, d *accounts.Deps) {
		mutate(c, d)
		d.Logger = slog.New(slog.DiscardHandler)
		d.Metrics = nil
		c.RateLimit.Disabled = true // one source, many logins
	})
	const players = 64
	bodies := make([]string, players)
	for i := range players {
		ticket := fmt.Sprintf("14000000%04x", i)
		srv.AddTicket(ticket, steamtest.SteamID(uint32(1000+i)))
		bodies[i] = steamBody(ticket)
		e.platformLogin(accountsapi.PathSteamLogin, bodies[i], http.StatusCreated)
	}
	login := func(body string) error {
		req := httptest.NewRequest(http.MethodPost, accountsapi.PathSteamLogin, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("login: status %d body %s", rec.Code, rec.Body)
		}
		return nil
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := login(bodies[i%players]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := login(bodies[next.Add(1)%players]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
