package accounts_test

// The service's other tests wrap their store in countingStore, which hides
// the store's own accounts.SessionStore methods, so platform sign-ins there
// go through the adapter accounts.Sessions composes from Store methods.
// These tests run platform sign-ins on bare memstore and pgstore, through
// their one-step SessionStore implementations (one SQL statement each on
// PostgreSQL), with the real Steam verifier against steamtest.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accounts/platform/steam"
	"github.com/livecell/livecell/cell/accounts/platform/steam/steamtest"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/token"
)

// orderedHomes is a directory that records which players were already
// stored when their home was set (the directory entry must come first).
type orderedHomes struct {
	store accounts.Store
	mu    sync.Mutex
	homes map[string]string
	late  []string
}

func (h *orderedHomes) SetHome(ctx context.Context, playerID, cellID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.store.PlayerByID(ctx, playerID); err == nil {
		h.late = append(h.late, playerID)
	}
	h.homes[playerID] = cellID
	return nil
}

type ssEnv struct {
	t       *testing.T
	handler http.Handler
	steam   *steamtest.Server
	homes   *orderedHomes
}

func newSSEnv(t *testing.T, store accounts.Store) *ssEnv {
	t.Helper()
	if _, ok := store.(accounts.SessionStore); !ok {
		t.Fatalf("%T does not implement accounts.SessionStore", store)
	}
	srv := steamtest.NewServer(480, "KEY")
	t.Cleanup(srv.Close)
	v, err := steam.New(steam.Config{BaseURL: srv.URL(), AppID: 480, PublisherKey: "KEY"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier := token.NewVerifier(keys, nil)
	homes := &orderedHomes{store: store, homes: map[string]string{}}
	svc, err := accounts.New(accounts.Config{
		CellID: "eu-west",
		Argon2: accounts.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16},
		// Many sign-ins from one address: the limits are tested elsewhere.
		RateLimit: accounts.RateLimitConfig{Disabled: true},
	}, accounts.Deps{
		Store:  store,
		Tokens: signer,
		Verify: accounts.VerifyFunc(func(tok string) (string, string, error) {
			c, err := verifier.Verify(tok, token.AudiencePlayer)
			return c.Subject, c.Cell, err
		}),
		Homes: homes,
		Steam: v,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ssEnv{t: t, handler: svc.Handler(), steam: srv, homes: homes}
}

func (e *ssEnv) post(path string, body any) (int, []byte) {
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (e *ssEnv) login(ticket string, want int) accountsapi.AuthResponse {
	e.t.Helper()
	st, body := e.post(accountsapi.PathSteamLogin, accountsapi.SteamLoginRequest{Ticket: ticket})
	if st != want {
		e.t.Fatalf("steam login: status %d body %s, want %d", st, body, want)
	}
	var a accountsapi.AuthResponse
	if err := json.Unmarshal(body, &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *ssEnv) refresh(tok string) (int, accountsapi.AuthResponse) {
	e.t.Helper()
	st, body := e.post(accountsapi.PathRefresh, accountsapi.RefreshRequest{RefreshToken: tok})
	var a accountsapi.AuthResponse
	if st == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			e.t.Fatal(err)
		}
	}
	return st, a
}

func sessionStores() []struct {
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

func TestSessionStoreSteamLogin(t *testing.T) {
	for _, st := range sessionStores() {
		t.Run(st.name, func(t *testing.T) {
			e := newSSEnv(t, st.new(t))
			e.steam.AddTicket("14000000aabb", steamtest.SteamID(1))
			first := e.login("14000000aabb", http.StatusCreated)
			if !first.NewAccount || first.HomeCell != "eu-west" || first.AccessToken == "" || first.RefreshToken == "" {
				t.Errorf("first login = %+v, want a new account homed in eu-west with both tokens", first)
			}
			if e.homes.homes[first.PlayerID] != "eu-west" || len(e.homes.late) != 0 {
				t.Errorf("directory %v (late %v), want %s placed in eu-west before it was stored", e.homes.homes, e.homes.late, first.PlayerID)
			}
			again := e.login("14000000aabb", http.StatusOK)
			if again.PlayerID != first.PlayerID || again.NewAccount || again.RefreshToken == first.RefreshToken {
				t.Errorf("returning login = %+v, want player %s, not new, a fresh refresh token", again, first.PlayerID)
			}
			// Each login's refresh token was stored as a family of its own.
			for _, tok := range []string{first.RefreshToken, again.RefreshToken} {
				status, next := e.refresh(tok)
				if status != http.StatusOK || next.PlayerID != first.PlayerID {
					t.Fatalf("refresh of a login's token: %d %+v, want 200 for %s", status, next, first.PlayerID)
				}
				// Reuse of the rotated token revokes its family: the
				// successor dies with it.
				if status, _ := e.refresh(tok); status != http.StatusUnauthorized {
					t.Errorf("reused token: status %d, want 401", status)
				}
				if status, _ := e.refresh(next.RefreshToken); status != http.StatusUnauthorized {
					t.Errorf("successor after reuse: status %d, want 401 (family revoked)", status)
				}
			}
			// An unknown ticket signs nobody in and creates nothing.
			n := len(e.homes.homes)
			st, body := e.post(accountsapi.PathSteamLogin, accountsapi.SteamLoginRequest{Ticket: "14000000ffff"})
			if st != http.StatusUnauthorized || len(e.homes.homes) != n {
				t.Errorf("unknown ticket: %d %s, %d directory entries (was %d); want 401 and none added", st, body, len(e.homes.homes), n)
			}
		})
	}
}

func TestSessionStoreConcurrentFirstSteamLogin(t *testing.T) {
	for _, st := range sessionStores() {
		t.Run(st.name, func(t *testing.T) {
			e := newSSEnv(t, st.new(t))
			e.steam.AddTicket("14000000cc", steamtest.SteamID(7))
			const n = 8
			codes := make([]int, n)
			auths := make([]accountsapi.AuthResponse, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					code, body := e.post(accountsapi.PathSteamLogin, accountsapi.SteamLoginRequest{Ticket: "14000000cc"})
					codes[i] = code
					_ = json.Unmarshal(body, &auths[i])
				})
			}
			wg.Wait()
			players, created := map[string]bool{}, 0
			for i := range n {
				switch codes[i] {
				case http.StatusCreated:
					created++
				case http.StatusOK:
				default:
					t.Fatalf("login #%d: status %d", i, codes[i])
				}
				players[auths[i].PlayerID] = true
			}
			if len(players) != 1 || created != 1 {
				t.Errorf("players %v, %d created; want one player, created once", players, created)
			}
			for i := range n {
				if status, _ := e.refresh(auths[i].RefreshToken); status != http.StatusOK {
					t.Errorf("refresh token of login #%d: status %d, want 200", i, status)
				}
			}
		})
	}
}
