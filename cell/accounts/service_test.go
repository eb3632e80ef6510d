package accounts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

const cellID = "eu-west"

// cheapArgon2 keeps tests fast; production uses accounts.DefaultArgon2.
func cheapArgon2() accounts.Argon2Params {
	return accounts.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
}

// clock is a settable time source shared by the service and the tokens.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeHomes is the global directory: it records SetHome calls, checks that
// the player is not yet in the store when its home is set (the directory
// entry must come first), and can be made to fail.
type fakeHomes struct {
	store accounts.Store
	mu    sync.Mutex
	homes map[string]string
	err   error
	late  []string // players already stored when SetHome was called
}

func (f *fakeHomes) SetHome(ctx context.Context, playerID, cellID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, err := f.store.PlayerByID(ctx, playerID); err == nil {
		f.late = append(f.late, playerID)
	}
	f.homes[playerID] = cellID
	return nil
}

func (f *fakeHomes) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.homes) }

// countingStore counts successful writes, so tests can assert that bad
// input wrote nothing: created counts players, writes every write of any
// kind (players, identities, refresh tokens).
type countingStore struct {
	accounts.Store
	created atomic.Int64
	writes  atomic.Int64
}

func (s *countingStore) wrote(err error) error {
	if err == nil {
		s.writes.Add(1)
	}
	return err
}

func (s *countingStore) CreatePlayer(ctx context.Context, p accounts.Player) error {
	err := s.Store.CreatePlayer(ctx, p)
	if err == nil {
		s.created.Add(1)
	}
	return s.wrote(err)
}

func (s *countingStore) CreatePlayerWithIdentity(ctx context.Context, p accounts.Player, id accounts.Identity) error {
	err := s.Store.CreatePlayerWithIdentity(ctx, p, id)
	if err == nil {
		s.created.Add(1)
	}
	return s.wrote(err)
}

func (s *countingStore) LinkIdentity(ctx context.Context, id accounts.Identity) (accounts.Identity, bool, error) {
	got, created, err := s.Store.LinkIdentity(ctx, id)
	if created {
		s.writes.Add(1)
	}
	return got, created, err
}

func (s *countingStore) UnlinkIdentity(ctx context.Context, playerID, provider string, passwordSignIn bool) error {
	return s.wrote(s.Store.UnlinkIdentity(ctx, playerID, provider, passwordSignIn))
}

func (s *countingStore) CreateRefreshToken(ctx context.Context, t accounts.RefreshToken) error {
	return s.wrote(s.Store.CreateRefreshToken(ctx, t))
}

func (s *countingStore) RotateRefreshToken(ctx context.Context, hash string, next accounts.RefreshToken, now time.Time) (accounts.RefreshResult, error) {
	res, err := s.Store.RotateRefreshToken(ctx, hash, next, now)
	if res.Outcome == accounts.RefreshRotated || res.Outcome == accounts.RefreshReused {
		s.writes.Add(1)
	}
	return res, err
}

func (s *countingStore) RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) (bool, error) {
	found, err := s.Store.RevokeRefreshFamily(ctx, hash, now)
	if found {
		s.writes.Add(1)
	}
	return found, err
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type env struct {
	t        testing.TB
	svc      *accounts.Service
	handler  http.Handler
	store    *countingStore
	homes    *fakeHomes
	clock    *clock
	signer   *token.Signer
	verifier *token.Verifier
	keys     *token.KeySet
	logs     *syncBuffer
	reg      *prometheus.Registry
	steam    *fakePlatform // configured on the service unless a test removes it
	epic     *fakePlatform
}

func newEnv(t testing.TB, mutate func(*accounts.Config, *accounts.Deps)) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	var err error
	if e.keys, err = token.GenerateKeySet(); err != nil {
		t.Fatal(err)
	}
	if e.signer, err = token.NewSigner(e.keys, e.clock.Now); err != nil {
		t.Fatal(err)
	}
	e.verifier = token.NewVerifier(e.keys, e.clock.Now)
	e.store = &countingStore{Store: memstore.New()}
	e.homes = &fakeHomes{store: e.store, homes: map[string]string{}}
	e.steam, e.epic = newFakePlatform(accountsapi.ProviderSteam), newFakePlatform(accountsapi.ProviderEpic)
	cfg := accounts.Config{CellID: cellID, PasswordAuth: true, Argon2: cheapArgon2()}
	deps := accounts.Deps{
		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:   e.store,
		Tokens:  e.signer,
		Verify:  verifyPlayer(e.verifier),
		Homes:   e.homes,
		Steam:   e.steam,
		Epic:    e.epic,
		Now:     e.clock.Now,
		Metrics: e.reg,
	}
	if mutate != nil {
		mutate(&cfg, &deps)
	}
	if deps.Store != accounts.Store(e.store) && deps.Store != nil {
		// The test brought its own store (pgstore, a failing one): count
		// its writes instead.
		e.store = &countingStore{Store: deps.Store}
		e.homes.store = e.store
		deps.Store = e.store
	}
	if e.svc, err = accounts.New(cfg, deps); err != nil {
		t.Fatalf("accounts.New = %v", err)
	}
	e.handler = e.svc.Handler()
	return e
}

// verifyPlayer is the adapter the wiring uses around token.Verifier.
func verifyPlayer(v *token.Verifier) accounts.VerifyFunc {
	return func(tok string) (string, string, error) {
		c, err := v.Verify(tok, token.AudiencePlayer)
		return c.Subject, c.Cell, err
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errBody(t testing.TB) httpapi.ErrorBody {
	t.Helper()
	var b httpapi.ErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return b
}

func (e *env) do(method, path, contentType string, body io.Reader, hdr map[string]string) response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (e *env) post(path, body string) response {
	return e.do(http.MethodPost, path, "application/json", strings.NewReader(body), nil)
}

func (e *env) me(tok string) response {
	return e.do(http.MethodGet, accountsapi.PathMe, "", nil, map[string]string{"Authorization": "Bearer " + tok})
}

func authBody(username, password string) string {
	b, _ := json.Marshal(accountsapi.RegisterRequest{Username: username, Password: password})
	return string(b)
}

func (e *env) register(username, password string) accountsapi.AuthResponse {
	e.t.Helper()
	r := e.post(accountsapi.PathRegister, authBody(username, password))
	if r.status != http.StatusCreated {
		e.t.Fatalf("register %q: status %d body %s, want 201", username, r.status, r.body)
	}
	var out accountsapi.AuthResponse
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("register response %s: %v", r.body, err)
	}
	return out
}

func TestRegisterLoginMe(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	c := &accountsapi.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()

	reg, err := c.Register(ctx, accountsapi.RegisterRequest{Username: "Alice.B-9_", Password: "pässwörd🎮"})
	if err != nil {
		t.Fatalf("Register = %v, want nil", err)
	}
	id, err := uuid.Parse(reg.PlayerID)
	if err != nil || id.Version() != 7 {
		t.Errorf("player id %q: version %v (err %v), want a UUIDv7", reg.PlayerID, id.Version(), err)
	}
	if reg.HomeCell != cellID || reg.TokenType != "Bearer" || reg.ExpiresIn != 900 || reg.AccessToken == "" {
		t.Errorf("Register = %+v, want home %q, Bearer, 900 s and a token", reg, cellID)
	}
	claims, err := e.verifier.Verify(reg.AccessToken, token.AudiencePlayer)
	if err != nil || claims.Subject != reg.PlayerID || claims.Cell != cellID {
		t.Errorf("register token claims = %+v, %v; want subject %s cell %s", claims, err, reg.PlayerID, cellID)
	}
	if got := e.homes.homes[reg.PlayerID]; got != cellID {
		t.Errorf("directory home of %s = %q, want %q", reg.PlayerID, got, cellID)
	}
	if len(e.homes.late) != 0 {
		t.Errorf("SetHome called after the player was stored (%v), want the directory entry first", e.homes.late)
	}

	// Usernames are case-insensitive: log in with another case.
	login, err := c.Login(ctx, accountsapi.LoginRequest{Username: "ALICE.b-9_", Password: "pässwörd🎮"})
	if err != nil {
		t.Fatalf("Login = %v, want nil", err)
	}
	if login.PlayerID != reg.PlayerID || login.HomeCell != cellID || login.ExpiresIn != 900 || login.TokenType != "Bearer" {
		t.Errorf("Login = %+v, want player %s home %s", login, reg.PlayerID, cellID)
	}

	me, err := c.Me(ctx, login.AccessToken)
	if err != nil {
		t.Fatalf("Me = %v, want nil", err)
	}
	want := accountsapi.Me{PlayerID: reg.PlayerID, Username: "alice.b-9_", HomeCell: cellID, CreatedAt: e.clock.Now()}
	if me.PlayerID != want.PlayerID || me.Username != want.Username || me.HomeCell != want.HomeCell || !me.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("Me = %+v, want %+v", me, want)
	}

	// Same name in another case is taken.
	_, err = c.Register(ctx, accountsapi.RegisterRequest{Username: "alice.B-9_", Password: "password2"})
	if apierr.CodeOf(err) != apierr.Conflict || apierr.MessageOf(err) != "username is taken" {
		t.Errorf("second Register = %v, want conflict %q", err, "username is taken")
	}
	if got := e.store.created.Load(); got != 1 {
		t.Errorf("players stored = %d, want 1", got)
	}
}

func TestTokenTTLFromConfig(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) { c.AccessTokenTTL = 5 * time.Minute })
	reg := e.register("alice", "password1")
	if reg.ExpiresIn != 300 {
		t.Errorf("expires_in = %d, want 300", reg.ExpiresIn)
	}
	claims, err := e.verifier.Verify(reg.AccessToken, token.AudiencePlayer)
	if err != nil || !claims.ExpiresAt.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Errorf("token exp = %v (err %v), want now+5m", claims.ExpiresAt, err)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	long := strings.Repeat("a", 33)
	tests := []struct {
		name, body, ctype string
		wantStatus        int
		wantCode          apierr.Code
		wantMsg           string // substring
	}{
		{"sql metacharacters", authBody(`x'); DROP TABLE players;--`, "password1"), "application/json", 400, apierr.BadRequest, "may only contain"},
		{"unicode username", authBody("ålice", "password1"), "application/json", 400, apierr.BadRequest, "may only contain"},
		{"kelvin sign", authBody("\u212Aate", "password1"), "application/json", 400, apierr.BadRequest, "may only contain"},
		{"emoji username", authBody("bob🎮", "password1"), "application/json", 400, apierr.BadRequest, "may only contain"},
		{"nul in username", `{"username":"ali\u0000ce","password":"password1"}`, "application/json", 400, apierr.BadRequest, "may only contain"},
		{"space in username", authBody("al ice", "password1"), "application/json", 400, apierr.BadRequest, "may only contain"},
		{"short username", authBody("ab", "password1"), "application/json", 400, apierr.BadRequest, "3 to 32"},
		{"long username", authBody(long, "password1"), "application/json", 400, apierr.BadRequest, "3 to 32"},
		{"missing username", `{"password":"password1"}`, "application/json", 400, apierr.BadRequest, "username is required"},
		{"missing password", `{"username":"alice"}`, "application/json", 400, apierr.BadRequest, "password is required"},
		{"short password", authBody("alice", "short"), "application/json", 400, apierr.BadRequest, "8 to 128"},
		{"long password", authBody("alice", strings.Repeat("p", 129)), "application/json", 400, apierr.BadRequest, "128 bytes"},
		{"long multibyte password", authBody("alice", strings.Repeat("é", 65)), "application/json", 400, apierr.BadRequest, "128 bytes"},
		{"nul in password", `{"username":"alice","password":"pass\u0000word1"}`, "application/json", 400, apierr.BadRequest, "NUL"},
		{"malformed json", `{"username":"alice",`, "application/json", 400, apierr.BadRequest, "malformed JSON"},
		{"not an object", `["alice","password1"]`, "application/json", 400, apierr.BadRequest, "must be"},
		{"null", `null`, "application/json", 400, apierr.BadRequest, "username is required"},
		{"wrong type", `{"username":12345,"password":"password1"}`, "application/json", 400, apierr.BadRequest, `"username"`},
		{"unknown field", `{"username":"alice","password":"password1","admin":true}`, "application/json", 400, apierr.BadRequest, "unknown field"},
		{"two objects", authBody("alice", "password1") + authBody("bob", "password1"), "application/json", 400, apierr.BadRequest, "single JSON object"},
		{"empty body", ``, "application/json", 400, apierr.BadRequest, "empty"},
		{"binary garbage", "\x00\x01\x02\xff", "application/json", 400, apierr.BadRequest, "malformed JSON"},
		{"oversized body", `{"username":"alice","password":"` + strings.Repeat("p", 8<<10) + `"}`, "application/json", 413, apierr.PayloadTooLarge, "exceeds"},
		{"wrong content type", authBody("alice", "password1"), "text/plain", 415, apierr.UnsupportedMedia, "application/json"},
	}
	for _, path := range []string{accountsapi.PathRegister, accountsapi.PathLogin} {
		for _, tt := range tests {
			if path == accountsapi.PathLogin && tt.name == "short password" {
				continue // login does not enforce the minimum; see TestLoginShortPassword
			}
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, nil)
				r := e.do(http.MethodPost, path, tt.ctype, strings.NewReader(tt.body), nil)
				b := r.errBody(t)
				if r.status != tt.wantStatus || b.Code != tt.wantCode || !strings.Contains(b.Message, tt.wantMsg) {
					t.Errorf("status %d body %s, want %d code %q message with %q", r.status, r.body, tt.wantStatus, tt.wantCode, tt.wantMsg)
				}
				if n := e.store.writes.Load(); n != 0 {
					t.Errorf("store writes = %d, want 0", n)
				}
				if n := e.homes.count(); n != 0 {
					t.Errorf("directory entries = %d, want 0", n)
				}
			})
		}
	}
}

func TestLoginShortPassword(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "password1")
	r := e.post(accountsapi.PathLogin, authBody("alice", "short"))
	if b := r.errBody(t); r.status != 401 || b.Code != apierr.InvalidCredentials {
		t.Errorf("login with a too-short password: status %d body %s, want 401 invalid_credentials", r.status, r.body)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "password1")
	wrong := e.post(accountsapi.PathLogin, authBody("alice", "password2"))
	unknown := e.post(accountsapi.PathLogin, authBody("nobody", "password1"))
	if wrong.status != http.StatusUnauthorized || wrong.errBody(t).Code != apierr.InvalidCredentials {
		t.Fatalf("wrong password: status %d body %s, want 401 invalid_credentials", wrong.status, wrong.body)
	}
	// An account with no password (a platform-only account) answers alike.
	if err := e.store.CreatePlayer(context.Background(), accounts.Player{ID: "p-steam", Username: "steam_1", HomeCell: cellID}); err != nil {
		t.Fatal(err)
	}
	nopw := e.post(accountsapi.PathLogin, authBody("steam_1", "password1"))
	if nopw.status != wrong.status || !bytes.Equal(nopw.body, wrong.body) {
		t.Errorf("passwordless account answered %d %s, wrong password %d %s; want identical answers", nopw.status, nopw.body, wrong.status, wrong.body)
	}
	if unknown.status != wrong.status || !bytes.Equal(unknown.body, wrong.body) {
		t.Errorf("unknown user answered %d %s, wrong password %d %s; want identical answers", unknown.status, unknown.body, wrong.status, wrong.body)
	}
	for _, h := range []string{"Content-Type", "Retry-After", "Www-Authenticate"} {
		if unknown.header.Get(h) != wrong.header.Get(h) {
			t.Errorf("header %s differs: unknown %q, wrong %q", h, unknown.header.Get(h), wrong.header.Get(h))
		}
	}
	// Every login ran argon2 once, the unknown and passwordless ones against
	// the dummy hash, so timing does not tell them apart. Registration hashed once too.
	if got := histogramCount(t, e.reg, "livecell_accounts_password_hash_seconds"); got != 4 {
		t.Errorf("argon2 runs = %d, want 4 (register, wrong password, unknown user, passwordless)", got)
	}
	if got := counterValue(t, e.reg, "livecell_accounts_logins_total", "invalid_credentials"); got != 3 {
		t.Errorf("logins_total{result=invalid_credentials} = %v, want 3", got)
	}
	if got := counterValue(t, e.reg, "livecell_accounts_registrations_total", "ok"); got != 1 {
		t.Errorf("registrations_total{result=ok} = %v, want 1", got)
	}
}

func TestMeTokens(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register("alice", "password1")

	otherKeys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	forger, err := token.NewSigner(otherKeys, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, _ := forger.IssuePlayer(reg.PlayerID, cellID, time.Minute)
	resume, _, _ := e.signer.IssueResume(reg.PlayerID, "session-1", cellID, time.Minute)
	server, _, _ := e.signer.IssueServer(reg.PlayerID, []string{"admin"}, time.Minute)
	elsewhere, _, _ := e.signer.IssuePlayer(reg.PlayerID, "us-east", time.Minute)
	ghost, _, _ := e.signer.IssuePlayer("01970000-0000-7000-8000-00000000dead", cellID, time.Minute)
	parts := strings.Split(reg.AccessToken, ".")
	// Swap in another token's payload under alice's signature.
	tampered := parts[0] + "." + strings.Split(ghost, ".")[1] + "." + parts[2]

	tests := []struct {
		name       string
		header     string // Authorization
		wantStatus int
		wantCode   apierr.Code
	}{
		{"valid", "Bearer " + reg.AccessToken, 200, ""},
		{"missing header", "", 401, apierr.Unauthenticated},
		{"basic auth", "Basic YWxpY2U6cGFzc3dvcmQx", 401, apierr.Unauthenticated},
		{"empty bearer", "Bearer ", 401, apierr.Unauthenticated},
		{"garbage", "Bearer not-a-token", 401, apierr.InvalidToken},
		{"three garbage parts", "Bearer a.b.c", 401, apierr.InvalidToken},
		{"huge", "Bearer " + strings.Repeat("A", 8<<10), 401, apierr.InvalidToken},
		{"forged key", "Bearer " + forged, 401, apierr.InvalidToken},
		{"tampered payload", "Bearer " + tampered, 401, apierr.InvalidToken},
		{"resume audience", "Bearer " + resume, 401, apierr.InvalidToken},
		{"server audience", "Bearer " + server, 401, apierr.InvalidToken},
		{"other cell", "Bearer " + elsewhere, 403, apierr.PermissionDenied},
		{"unknown player", "Bearer " + ghost, 404, apierr.UnknownPlayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.header != "" {
				hdr["Authorization"] = tt.header
			}
			r := e.do(http.MethodGet, accountsapi.PathMe, "", nil, hdr)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d body %s, want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantCode == "" {
				return
			}
			if b := r.errBody(t); b.Code != tt.wantCode || b.Message == "" {
				t.Errorf("body %s, want code %q with a message", r.body, tt.wantCode)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(15*time.Minute + token.Leeway + time.Second)
		r := e.me(reg.AccessToken)
		if b := r.errBody(t); r.status != 401 || b.Code != apierr.TokenExpired {
			t.Errorf("expired token: status %d body %s, want 401 token_expired", r.status, r.body)
		}
	})
}

func TestPasswordAuthDisabled(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) { c.PasswordAuth = false })
	for _, path := range []string{accountsapi.PathRegister, accountsapi.PathLogin} {
		r := e.post(path, authBody("alice", "password1"))
		b := r.errBody(t)
		if r.status != http.StatusForbidden || b.Code != apierr.PermissionDenied || !strings.Contains(b.Message, "disabled") {
			t.Errorf("POST %s with password auth off: status %d body %s, want 403 permission_denied saying disabled", path, r.status, r.body)
		}
	}
	if e.store.created.Load() != 0 || e.homes.count() != 0 {
		t.Errorf("password auth off wrote %d players and %d directory entries, want none", e.store.created.Load(), e.homes.count())
	}
	// Tokens from other logins (platform logins later) still work on /me.
	p := accounts.Player{ID: "p-1", Username: "steam_123", HomeCell: cellID, CreatedAt: e.clock.Now()}
	if err := e.store.CreatePlayer(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	tok, _, _ := e.signer.IssuePlayer("p-1", cellID, time.Minute)
	if r := e.me(tok); r.status != http.StatusOK {
		t.Errorf("/me with password auth off: status %d body %s, want 200", r.status, r.body)
	}
}

func TestSetHomeFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.homes.err = errors.New("dial tcp 10.0.0.9:4100: connection refused")
	r := e.post(accountsapi.PathRegister, authBody("alice", "password1"))
	b := r.errBody(t)
	if r.status != http.StatusServiceUnavailable || b.Code != apierr.Unavailable {
		t.Fatalf("register with directory down: status %d body %s, want 503 unavailable", r.status, r.body)
	}
	if strings.Contains(string(r.body), "10.0.0.9") {
		t.Errorf("body %s leaks the cause", r.body)
	}
	if n := e.store.created.Load(); n != 0 {
		t.Errorf("players stored = %d, want 0", n)
	}
	if _, err := e.store.PlayerByUsername(context.Background(), "alice"); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("PlayerByUsername(alice) after failed register = %v, want not_found", err)
	}
	// Nothing is left behind that blocks a retry.
	e.homes.err = nil
	e.register("alice", "password1")
}

// A draining cell's refusal reaches the client as draining, not as a
// retryable outage at the same cell: the client must resolve again.
func TestSetHomeDraining(t *testing.T) {
	e := newEnv(t, nil)
	e.homes.err = apierr.New(apierr.Draining, "cell eu-west is draining")
	r := e.post(accountsapi.PathRegister, authBody("bob", "password1"))
	if b := r.errBody(t); r.status != http.StatusServiceUnavailable || b.Code != apierr.Draining {
		t.Fatalf("register at a draining cell: status %d body %s, want 503 draining", r.status, r.body)
	}
	if n := e.store.created.Load(); n != 0 {
		t.Errorf("players stored = %d, want 0", n)
	}
}

// failingStore fails every call with an uncoded infrastructure error.
type failingStore struct{}

var errStoreDown = errors.New("pgx: connection to 10.0.0.5:26257 reset")

func (failingStore) CreatePlayer(context.Context, accounts.Player) error { return errStoreDown }
func (failingStore) PlayerByUsername(context.Context, string) (accounts.Player, error) {
	return accounts.Player{}, errStoreDown
}
func (failingStore) PlayerByID(context.Context, string) (accounts.Player, error) {
	return accounts.Player{}, errStoreDown
}
func (failingStore) CreatePlayerWithIdentity(context.Context, accounts.Player, accounts.Identity) error {
	return errStoreDown
}
func (failingStore) PlayerByIdentity(context.Context, string, string) (accounts.Player, error) {
	return accounts.Player{}, errStoreDown
}
func (failingStore) LinkIdentity(context.Context, accounts.Identity) (accounts.Identity, bool, error) {
	return accounts.Identity{}, false, errStoreDown
}
func (failingStore) UnlinkIdentity(context.Context, string, string, bool) error { return errStoreDown }
func (failingStore) Identities(context.Context, string) ([]accounts.Identity, error) {
	return nil, errStoreDown
}
func (failingStore) CreateRefreshToken(context.Context, accounts.RefreshToken) error {
	return errStoreDown
}
func (failingStore) RotateRefreshToken(context.Context, string, accounts.RefreshToken, time.Time) (accounts.RefreshResult, error) {
	return accounts.RefreshResult{}, errStoreDown
}
func (failingStore) RevokeRefreshFamily(context.Context, string, time.Time) (bool, error) {
	return false, errStoreDown
}

func TestStoreFailureIsInternal(t *testing.T) {
	e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Store = failingStore{} })
	tok, _, _ := e.signer.IssuePlayer("p-1", cellID, time.Minute)
	e.steam.add("t-1", "76561198000000001", "")
	for _, r := range []response{
		e.post(accountsapi.PathRegister, authBody("alice", "password1")),
		e.post(accountsapi.PathLogin, authBody("alice", "password1")),
		e.me(tok),
		e.post(accountsapi.PathSteamLogin, `{"ticket":"t-1"}`),
		e.post(accountsapi.PathRefresh, `{"refresh_token":"`+strings.Repeat("A", 43)+`"}`),
		e.post(accountsapi.PathLogout, `{"refresh_token":"`+strings.Repeat("A", 43)+`"}`),
		e.do(http.MethodPost, accountsapi.PathIdentities, "application/json", strings.NewReader(`{"provider":"steam","ticket":"t-1"}`),
			map[string]string{"Authorization": "Bearer " + tok}),
		e.do(http.MethodDelete, accountsapi.PathIdentity("steam"), "", nil, map[string]string{"Authorization": "Bearer " + tok}),
	} {
		b := r.errBody(t)
		if r.status != 500 || b.Code != apierr.Internal || strings.Contains(string(r.body), "10.0.0.5") {
			t.Errorf("store down: status %d body %s, want 500 internal without the cause", r.status, r.body)
		}
	}
	if !strings.Contains(e.logs.String(), "10.0.0.5") {
		t.Errorf("logs do not hold the store error's cause, want it there for operators")
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     apierr.Code
	}{
		{"GET", accountsapi.PathRegister, 405, apierr.MethodNotAllowed},
		{"PUT", accountsapi.PathLogin, 405, apierr.MethodNotAllowed},
		{"POST", accountsapi.PathMe, 405, apierr.MethodNotAllowed},
		{"GET", "/v1/nope", 404, apierr.NotFound},
		{"GET", "/", 404, apierr.NotFound},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, "", nil, nil)
		if b := r.errBody(t); r.status != tt.wantStatus || b.Code != tt.wantCode {
			t.Errorf("%s %s: status %d body %s, want %d %q", tt.method, tt.path, r.status, r.body, tt.wantStatus, tt.wantCode)
		}
	}
	if r := e.do("GET", accountsapi.PathRegister, "", nil, nil); r.header.Get("Allow") != "POST" {
		t.Errorf("405 Allow header = %q, want POST", r.header.Get("Allow"))
	}
}

func TestConcurrentRegisterSameUsername(t *testing.T) {
	e := newEnv(t, nil)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = e.post(accountsapi.PathRegister, authBody("contested", "password1")).status })
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
			conflicts++
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Errorf("statuses %v: %d created, %d conflicts; want 1 and %d", statuses, created, conflicts, n-1)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, nil)
	const pw = "hunter2-very-secret"
	reg := e.register("alice", pw)
	e.post(accountsapi.PathLogin, authBody("alice", pw))
	e.post(accountsapi.PathLogin, authBody("alice", pw+"x"))
	e.post(accountsapi.PathLogin, authBody("nobody", pw))
	e.post(accountsapi.PathRegister, `{"username":"alice","password":"`+pw+`",`)
	e.me(reg.AccessToken)
	e.me(reg.AccessToken + "x")
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs written, want some to check")
	}
	sig := reg.AccessToken[strings.LastIndexByte(reg.AccessToken, '.')+1:]
	for _, secret := range []string{pw, sig} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*accounts.Config, *accounts.Deps)
		want   string
	}{
		{"no cell", func(c *accounts.Config, _ *accounts.Deps) { c.CellID = "" }, "cell id"},
		{"spaced cell", func(c *accounts.Config, _ *accounts.Deps) { c.CellID = " eu" }, "cell id"},
		{"ttl too long", func(c *accounts.Config, _ *accounts.Deps) { c.AccessTokenTTL = 16 * time.Minute }, "TTL"},
		{"ttl too short", func(c *accounts.Config, _ *accounts.Deps) { c.AccessTokenTTL = time.Second }, "TTL"},
		{"negative ttl", func(c *accounts.Config, _ *accounts.Deps) { c.AccessTokenTTL = -time.Minute }, "TTL"},
		{"bad argon2", func(c *accounts.Config, _ *accounts.Deps) { c.Argon2.Time = 0 }, "argon2"},
		{"negative hashes", func(c *accounts.Config, _ *accounts.Deps) { c.MaxConcurrentHashes = -1 }, "MaxConcurrentHashes"},
		{"no store", func(_ *accounts.Config, d *accounts.Deps) { d.Store = nil }, "Store"},
		{"no tokens", func(_ *accounts.Config, d *accounts.Deps) { d.Tokens = nil }, "Tokens"},
		{"no verifier", func(_ *accounts.Config, d *accounts.Deps) { d.Verify = nil }, "Verify"},
		{"no homes", func(_ *accounts.Config, d *accounts.Deps) { d.Homes = nil }, "Homes"},
	}
	base := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := accounts.Config{CellID: cellID, PasswordAuth: true, Argon2: cheapArgon2()}
			deps := accounts.Deps{Store: base.store, Tokens: base.signer, Verify: verifyPlayer(base.verifier), Homes: base.homes}
			tt.mutate(&cfg, &deps)
			svc, err := accounts.New(cfg, deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want an error mentioning %q", svc, err, tt.want)
			}
		})
	}
	// Zero values take the defaults, and optional deps may be nil.
	svc, err := accounts.New(accounts.Config{CellID: cellID, Argon2: cheapArgon2()},
		accounts.Deps{Store: base.store, Tokens: base.signer, Verify: verifyPlayer(base.verifier), Homes: base.homes})
	if err != nil || svc == nil {
		t.Errorf("New with defaults = %v, %v; want a service", svc, err)
	}
	// Two services cannot share one registry unless the wiring labels them.
	_, err = accounts.New(accounts.Config{CellID: cellID, Argon2: cheapArgon2()},
		accounts.Deps{Store: base.store, Tokens: base.signer, Verify: verifyPlayer(base.verifier), Homes: base.homes, Metrics: base.reg})
	if err == nil {
		t.Errorf("second New on one unwrapped registry = nil error, want a duplicate-metrics error")
	}
}

// The wiring runs several cells in one process on one registry, wrapping
// it with a cell label per cell.
func TestMetricsPerCell(t *testing.T) {
	base := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	for _, cell := range []string{"eu-west", "us-east"} {
		_, err := accounts.New(accounts.Config{CellID: cell, Argon2: cheapArgon2()}, accounts.Deps{
			Store: base.store, Tokens: base.signer, Verify: verifyPlayer(base.verifier), Homes: base.homes,
			Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"cell": cell}, reg),
		})
		if err != nil {
			t.Fatalf("New for cell %s on a wrapped shared registry = %v, want nil", cell, err)
		}
	}
}

func TestOpsMe(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register("alice", "password1")
	h := e.svc.Ops()[protocol.OpAccountsMe]
	if h == nil {
		t.Fatalf("Ops() has no handler for OpAccountsMe")
	}
	caller := protocol.Caller{PlayerID: reg.PlayerID, SessionID: "s-1", Cell: cellID}
	for _, payload := range []string{"", "{}", " { } ", "\n{}\n"} {
		out, err := h(context.Background(), caller, []byte(payload))
		if err != nil {
			t.Errorf("OpAccountsMe(%q) = %v, want nil", payload, err)
			continue
		}
		var me accountsapi.Me
		if err := json.Unmarshal(out, &me); err != nil || me.PlayerID != reg.PlayerID || me.Username != "alice" || me.HomeCell != cellID {
			t.Errorf("OpAccountsMe(%q) = %s (%v), want alice's account", payload, out, err)
		}
	}
	for _, payload := range []string{`{"x":1}`, `[]`, `null`, `"{}"`, `{}{}`, `{`, "garbage", "\x00"} {
		_, err := h(context.Background(), caller, []byte(payload))
		if apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("OpAccountsMe(%q) = %v, want bad_request", payload, err)
		}
	}
	_, err := h(context.Background(), protocol.Caller{}, nil)
	if apierr.CodeOf(err) != apierr.NotAuthenticated {
		t.Errorf("OpAccountsMe without a player = %v, want not_authenticated", err)
	}
	_, err = h(context.Background(), protocol.Caller{PlayerID: "ghost"}, nil)
	if apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Errorf("OpAccountsMe for an unknown player = %v, want unknown_player", err)
	}
}

// histogramCount and counterValue read metrics straight from the registry.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func BenchmarkLogin(b *testing.B) {
	e := newEnv(b, func(c *accounts.Config, d *accounts.Deps) {
		d.Logger = slog.New(slog.DiscardHandler)
		d.Metrics = nil
		c.RateLimit.Disabled = true // one source, many logins
	})
	e.register("alice", "password1")
	body := []byte(authBody("alice", "password1"))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, accountsapi.PathLogin, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("login: status %d body %s", rec.Code, rec.Body)
		}
	}
}

func ExampleVerifyFunc() {
	keys, _ := token.GenerateKeySet()
	v := token.NewVerifier(keys, nil)
	// The wiring adapts token.Verifier to what accounts.Deps.Verify needs.
	verify := accounts.VerifyFunc(func(tok string) (string, string, error) {
		c, err := v.Verify(tok, token.AudiencePlayer)
		return c.Subject, c.Cell, err
	})
	_, _, err := verify.VerifyPlayer("garbage")
	fmt.Println(apierr.CodeOf(err))
	// Output: invalid_token
}
