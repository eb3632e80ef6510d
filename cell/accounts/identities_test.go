package accounts_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
)

// fakePlatform is a platform verifier that knows a fixed set of tickets and
// answers with the error codes package platform documents. Tests of the
// real verifiers against servers speaking the platforms' formats live with
// them (platform/steam, platform/epic).
type fakePlatform struct {
	provider string
	calls    atomic.Int64

	mu      sync.Mutex
	tickets map[string]platform.Identity
	err     error // when set, every call fails with it
}

func newFakePlatform(provider string) *fakePlatform {
	return &fakePlatform{provider: provider, tickets: map[string]platform.Identity{}}
}

func (f *fakePlatform) add(ticket, subject, displayName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tickets[ticket] = platform.Identity{Provider: f.provider, Subject: subject, DisplayName: displayName}
}

func (f *fakePlatform) set(ticket string, id platform.Identity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tickets[ticket] = id
}

func (f *fakePlatform) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakePlatform) Verify(ctx context.Context, ticket string) (platform.Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return platform.Identity{}, f.err
	}
	id, ok := f.tickets[ticket]
	if !ok {
		return platform.Identity{}, platform.Rejected("fake.Verify", errors.New("unknown ticket"))
	}
	return id, nil
}

func steamBody(ticket string) string {
	b, _ := json.Marshal(accountsapi.SteamLoginRequest{Ticket: ticket})
	return string(b)
}

func epicBody(idToken string) string {
	b, _ := json.Marshal(accountsapi.EpicLoginRequest{IDToken: idToken})
	return string(b)
}

func linkBody(req accountsapi.LinkRequest) string {
	b, _ := json.Marshal(req)
	return string(b)
}

func decodeAuth(t testing.TB, r response) accountsapi.AuthResponse {
	t.Helper()
	var out accountsapi.AuthResponse
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("auth response %s: %v", r.body, err)
	}
	return out
}

func (e *env) meOf(tok string) accountsapi.Me {
	e.t.Helper()
	r := e.me(tok)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET me: status %d body %s, want 200", r.status, r.body)
	}
	var me accountsapi.Me
	if err := json.Unmarshal(r.body, &me); err != nil {
		e.t.Fatalf("me %s: %v", r.body, err)
	}
	return me
}

func (e *env) withBearer(method, path, tok, body string) response {
	e.t.Helper()
	var hdr map[string]string
	if tok != "" {
		hdr = map[string]string{"Authorization": "Bearer " + tok}
	}
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.do(method, path, ct, strings.NewReader(body), hdr)
}

// platformLogin signs in and checks the status.
func (e *env) platformLogin(path, body string, wantStatus int) accountsapi.AuthResponse {
	e.t.Helper()
	r := e.post(path, body)
	if r.status != wantStatus {
		e.t.Fatalf("POST %s: status %d body %s, want %d", path, r.status, r.body, wantStatus)
	}
	return decodeAuth(e.t, r)
}

var handleRE = regexp.MustCompile(`^(steam|epic)#[a-z2-7]{10}$`)

func TestPlatformFirstLoginCreatesAccount(t *testing.T) {
	tests := []struct {
		provider, path, body string
		subject, displayName string
	}{
		{accountsapi.ProviderSteam, accountsapi.PathSteamLogin, steamBody("14000000AABBCC"), "76561198000000001", ""},
		{accountsapi.ProviderEpic, accountsapi.PathEpicLogin, epicBody("eyJhbGciOi.x.y"), "0123456789abcdef0123456789abcdef", "Gordon"},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			e := newEnv(t, nil)
			e.steam.add("14000000AABBCC", "76561198000000001", "")
			e.epic.add("eyJhbGciOi.x.y", "0123456789abcdef0123456789abcdef", "Gordon")

			first := e.platformLogin(tt.path, tt.body, http.StatusCreated)
			if !first.NewAccount || first.HomeCell != cellID || first.TokenType != "Bearer" || first.ExpiresIn != 900 ||
				first.RefreshToken == "" || first.RefreshExpiresIn != 30*24*3600 {
				t.Errorf("first login = %+v, want a new account homed in %s with access and 30-day refresh tokens", first, cellID)
			}
			claims, err := e.verifier.Verify(first.AccessToken, token.AudiencePlayer)
			if err != nil || claims.Subject != first.PlayerID || claims.Cell != cellID {
				t.Errorf("access token claims = %+v, %v; want player %s in %s", claims, err, first.PlayerID, cellID)
			}
			if got := e.homes.homes[first.PlayerID]; got != cellID || len(e.homes.late) != 0 {
				t.Errorf("directory home = %q (late %v), want %q set before the player was stored", got, e.homes.late, cellID)
			}

			me := e.meOf(first.AccessToken)
			if !handleRE.MatchString(me.Username) || !strings.HasPrefix(me.Username, tt.provider+"#") {
				t.Errorf("username = %q, want a generated %s#<10 base32> handle", me.Username, tt.provider)
			}
			if me.HasPassword || len(me.Identities) != 1 {
				t.Fatalf("me = %+v, want no password and one identity", me)
			}
			want := accountsapi.Identity{Provider: tt.provider, Subject: tt.subject, DisplayName: tt.displayName, LinkedAt: e.clock.Now()}
			if got := me.Identities[0]; got.Provider != want.Provider || got.Subject != want.Subject ||
				got.DisplayName != want.DisplayName || !got.LinkedAt.Equal(want.LinkedAt) {
				t.Errorf("identity = %+v, want %+v", got, want)
			}

			// A password login cannot reach the handle.
			r := e.post(accountsapi.PathLogin, authBody(me.Username, "password1"))
			if r.status != http.StatusBadRequest {
				t.Errorf("password login as %q: status %d, want 400 (handles are not usernames)", me.Username, r.status)
			}

			again := e.platformLogin(tt.path, tt.body, http.StatusOK)
			if again.PlayerID != first.PlayerID || again.NewAccount || again.RefreshToken == first.RefreshToken {
				t.Errorf("returning login = %+v, want player %s, not new, a fresh refresh token", again, first.PlayerID)
			}
			if n := e.store.created.Load(); n != 1 {
				t.Errorf("players stored = %d, want 1", n)
			}
			if got := counterValue(t, e.reg, "livecell_accounts_platform_logins_total", "created"); got != 1 {
				t.Errorf("platform_logins_total{result=created} = %v, want 1", got)
			}
			if got := counterValue(t, e.reg, "livecell_accounts_platform_logins_total", "ok"); got != 1 {
				t.Errorf("platform_logins_total{result=ok} = %v, want 1", got)
			}
		})
	}
}

func TestPlatformLoginBadInput(t *testing.T) {
	unavailable := platform.Unavailable("steam.Verify", errors.New("dial tcp 10.9.9.9:443: connection refused"))
	unavailable.RetryAfter = 7 * time.Second
	tests := []struct {
		name       string
		setup      func(e *env)
		body       string
		ctype      string
		wantStatus int
		wantCode   apierr.Code
		wantMsg    string
		wantRetry  string // Retry-After header
		wantCalls  int64  // verifier calls
	}{
		{"unknown ticket", nil, steamBody("deadbeef"), "", 401, apierr.InvalidCredentials, "rejected", "", 1},
		{"sql metacharacters", nil, steamBody(`'); DROP TABLE players;--`), "", 401, apierr.InvalidCredentials, "rejected", "", 1},
		{"verifier down", func(e *env) { e.steam.fail(unavailable) }, steamBody("t"), "", 503, apierr.Unavailable, "retry later", "7", 1},
		{"verifier uncoded error", func(e *env) { e.steam.fail(errors.New("eof")) }, steamBody("t"), "", 503, apierr.Unavailable, "retry later", "", 1},
		{"verifier timeout", func(e *env) { e.steam.fail(apierr.New(apierr.Timeout, "slow")) }, steamBody("t"), "", 503, apierr.Unavailable, "", "", 1},
		{"banned", func(e *env) { e.steam.fail(platform.Banned("steam.Verify", nil)) }, steamBody("t"), "", 403, apierr.PermissionDenied, "banned", "", 1},
		{"not a ticket", func(e *env) { e.steam.fail(platform.BadTicket("steam.Verify", "ticket must be hex")) }, steamBody("zz"), "", 400, apierr.BadRequest, "hex", "", 1},
		{"verifier returns another provider", func(e *env) {
			e.steam.set("t", platform.Identity{Provider: "epic", Subject: "x"})
		}, steamBody("t"), "", 500, apierr.Internal, "", "", 1},
		{"verifier returns no subject", func(e *env) {
			e.steam.set("t", platform.Identity{Provider: "steam"})
		}, steamBody("t"), "", 500, apierr.Internal, "", "", 1},
		{"verifier returns a NUL subject", func(e *env) {
			e.steam.set("t", platform.Identity{Provider: "steam", Subject: "a\x00b"})
		}, steamBody("t"), "", 500, apierr.Internal, "", "", 1},
		{"missing ticket", nil, `{}`, "", 400, apierr.BadRequest, "ticket is required", "", 0},
		{"empty ticket", nil, steamBody(""), "", 400, apierr.BadRequest, "ticket is required", "", 0},
		{"long ticket", nil, steamBody(strings.Repeat("a", 8<<10+1)), "", 400, apierr.BadRequest, "at most", "", 0},
		{"oversized body", nil, steamBody(strings.Repeat("a", 20<<10)), "", 413, apierr.PayloadTooLarge, "exceeds", "", 0},
		{"unknown field", nil, `{"ticket":"t","steamid":"76561198000000001"}`, "", 400, apierr.BadRequest, "unknown field", "", 0},
		{"id_token to steam", nil, `{"id_token":"t"}`, "", 400, apierr.BadRequest, "unknown field", "", 0},
		{"malformed json", nil, `{"ticket":`, "", 400, apierr.BadRequest, "malformed JSON", "", 0},
		{"wrong type", nil, `{"ticket":123}`, "", 400, apierr.BadRequest, `"ticket"`, "", 0},
		{"two objects", nil, steamBody("t") + steamBody("u"), "", 400, apierr.BadRequest, "single JSON object", "", 0},
		{"wrong content type", nil, steamBody("t"), "text/plain", 415, apierr.UnsupportedMedia, "", "", 0},
		{"steam not configured", nil, steamBody("t"), "", 403, apierr.PermissionDenied, "not enabled", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) {
				if tt.name == "steam not configured" {
					d.Steam = nil
				}
			})
			if tt.setup != nil {
				tt.setup(e)
			}
			body := tt.body
			ctype := tt.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			r := e.do(http.MethodPost, accountsapi.PathSteamLogin, ctype, strings.NewReader(body), nil)
			b := r.errBody(t)
			if r.status != tt.wantStatus || b.Code != tt.wantCode || !strings.Contains(b.Message, tt.wantMsg) {
				t.Errorf("status %d body %s, want %d %q with %q", r.status, r.body, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if got := r.header.Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if strings.Contains(string(r.body), "10.9.9.9") {
				t.Errorf("body %s leaks the verifier's cause", r.body)
			}
			if got := e.steam.calls.Load(); got != tt.wantCalls {
				t.Errorf("verifier calls = %d, want %d", got, tt.wantCalls)
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

func TestEpicLoginBadInput(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   apierr.Code
	}{
		{"rejected token", epicBody("eyJ.forged.sig"), 401, apierr.InvalidCredentials},
		{"sql metacharacters", epicBody(`" OR 1=1 --`), 401, apierr.InvalidCredentials},
		{"steam field", `{"ticket":"abc"}`, 400, apierr.BadRequest},
		{"missing", `{}`, 400, apierr.BadRequest},
		{"null", `null`, 400, apierr.BadRequest},
		{"array", `["eyJ"]`, 400, apierr.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.post(accountsapi.PathEpicLogin, tt.body)
			if b := r.errBody(t); r.status != tt.wantStatus || b.Code != tt.wantCode {
				t.Errorf("status %d body %s, want %d %q", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
			if n := e.store.writes.Load(); n != 0 {
				t.Errorf("store writes = %d, want 0", n)
			}
		})
	}
	e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Epic = nil })
	r := e.post(accountsapi.PathEpicLogin, epicBody("eyJ"))
	if b := r.errBody(t); r.status != 403 || b.Code != apierr.PermissionDenied || !strings.Contains(b.Message, "epic") {
		t.Errorf("epic off: status %d body %s, want 403 permission_denied naming epic", r.status, r.body)
	}
}

func TestPlatformDisplayNameCleaned(t *testing.T) {
	e := newEnv(t, nil)
	e.epic.add("tok", "acct-1", "  Gor\x00don\x1b[31m "+strings.Repeat("é", 40)+"\xff")
	auth := e.platformLogin(accountsapi.PathEpicLogin, epicBody("tok"), http.StatusCreated)
	got := e.meOf(auth.AccessToken).Identities[0].DisplayName
	if strings.ContainsAny(got, "\x00\x1b") || len(got) > 64 || !strings.HasPrefix(got, "Gordon[31m é") {
		t.Errorf("display name = %q, want control characters dropped, trimmed, at most 64 bytes", got)
	}
}

// Concurrent first logins with one platform account make one player; every
// caller gets it.
func TestConcurrentFirstPlatformLogin(t *testing.T) {
	e := newEnv(t, nil)
	e.steam.add("t", "76561198000000001", "")
	const n = 8
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = e.post(accountsapi.PathSteamLogin, steamBody("t")) })
	}
	wg.Wait()
	created, players := 0, map[string]bool{}
	for i, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("login #%d: status %d body %s, want 200 or 201", i, r.status, r.body)
		}
		players[decodeAuth(t, r).PlayerID] = true
	}
	if created != 1 || len(players) != 1 {
		t.Errorf("%d created, %d distinct players; want 1 and 1", created, len(players))
	}
	if got := e.store.created.Load(); got != 1 {
		t.Errorf("players stored = %d, want 1", got)
	}
}

func TestLinkAndUnlink(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	c := &accountsapi.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	e.steam.add("steam-t", "76561198000000001", "")
	e.epic.add("epic-t", "acct-epic", "Alyx")

	alice, err := c.Register(ctx, accountsapi.RegisterRequest{Username: "alice", Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	if !alice.NewAccount || alice.RefreshToken == "" {
		t.Errorf("Register = %+v, want new_account and a refresh token", alice)
	}
	id, err := c.Link(ctx, alice.AccessToken, accountsapi.LinkRequest{Provider: "steam", Ticket: "steam-t"})
	if err != nil || id.Provider != "steam" || id.Subject != "76561198000000001" || !id.LinkedAt.Equal(e.clock.Now()) {
		t.Fatalf("Link(steam) = %+v, %v; want the steam identity linked now", id, err)
	}
	// Linking again answers 200 with the same identity.
	r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, alice.AccessToken, linkBody(accountsapi.LinkRequest{Provider: "steam", Ticket: "steam-t"}))
	if r.status != http.StatusOK {
		t.Errorf("second link: status %d body %s, want 200", r.status, r.body)
	}
	e.clock.Advance(time.Second) // identities list oldest first
	if _, err := c.Link(ctx, alice.AccessToken, accountsapi.LinkRequest{Provider: "epic", IDToken: "epic-t"}); err != nil {
		t.Fatalf("Link(epic) = %v", err)
	}
	me, err := c.Me(ctx, alice.AccessToken)
	if err != nil || !me.HasPassword || len(me.Identities) != 2 || me.Identities[1].DisplayName != "Alyx" {
		t.Fatalf("Me = %+v, %v; want password and two identities", me, err)
	}

	// Steam now signs in to alice.
	st, err := c.SteamLogin(ctx, "steam-t")
	if err != nil || st.PlayerID != alice.PlayerID || st.NewAccount {
		t.Errorf("SteamLogin = %+v, %v; want alice's existing account", st, err)
	}
	// Unlink both; the password remains a way in.
	for _, p := range []string{"steam", "epic"} {
		if err := c.Unlink(ctx, alice.AccessToken, p); err != nil {
			t.Fatalf("Unlink(%s) = %v, want nil", p, err)
		}
	}
	if me, _ := c.Me(ctx, alice.AccessToken); len(me.Identities) != 0 || me.Identities == nil {
		t.Errorf("identities after unlink = %#v, want an empty list", me.Identities)
	}
	if err := c.Unlink(ctx, alice.AccessToken, "steam"); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Unlink again = %v, want not_found", err)
	}
	// An unlinked Steam account is free: it now creates its own player.
	fresh, err := c.SteamLogin(ctx, "steam-t")
	if err != nil || fresh.PlayerID == alice.PlayerID || !fresh.NewAccount {
		t.Errorf("SteamLogin after unlink = %+v, %v; want a new account", fresh, err)
	}
}

func TestLinkBadInput(t *testing.T) {
	type setup struct {
		e                 *env
		alice, bob, ghost string // access tokens
		expired, forged   string
		resume, otherCell string
	}
	prepare := func(t *testing.T, mutate func(*accounts.Config, *accounts.Deps)) setup {
		e := newEnv(t, mutate)
		e.steam.add("alice-steam", "s-alice", "")
		e.steam.add("bob-steam", "s-bob", "")
		e.steam.add("alice-steam-2", "s-alice-2", "")
		e.steam.add("new-steam", "s-new", "")
		a := e.register("alice", "password1")
		b := e.platformLogin(accountsapi.PathSteamLogin, steamBody("bob-steam"), http.StatusCreated)
		if r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, a.AccessToken,
			linkBody(accountsapi.LinkRequest{Provider: "steam", Ticket: "alice-steam"})); r.status != http.StatusCreated {
			t.Fatalf("link alice's steam: %d %s", r.status, r.body)
		}
		otherKeys, _ := token.GenerateKeySet()
		forger, _ := token.NewSigner(otherKeys, e.clock.Now)
		forged, _, _ := forger.IssuePlayer(a.PlayerID, cellID, time.Minute)
		expired, _, _ := e.signer.IssuePlayer(a.PlayerID, cellID, time.Minute)
		resume, _, _ := e.signer.IssueResume(a.PlayerID, "s-1", cellID, time.Hour)
		other, _, _ := e.signer.IssuePlayer(a.PlayerID, "us-east", time.Hour)
		ghost, _, _ := e.signer.IssuePlayer("01970000-0000-7000-8000-00000000dead", cellID, time.Hour)
		return setup{e: e, alice: a.AccessToken, bob: b.AccessToken, ghost: ghost, expired: expired, forged: forged,
			resume: resume, otherCell: other}
	}
	steam := func(ticket string) string {
		return linkBody(accountsapi.LinkRequest{Provider: "steam", Ticket: ticket})
	}
	tests := []struct {
		name       string
		tok        func(s setup) string
		body       string
		wantStatus int
		wantCode   apierr.Code
		wantMsg    string
	}{
		{"owned by another player", func(s setup) string { return s.alice }, steam("bob-steam"), 409, apierr.Conflict, "another player"},
		{"bob takes alice's", func(s setup) string { return s.bob }, steam("alice-steam"), 409, apierr.Conflict, "another player"},
		{"second steam account", func(s setup) string { return s.alice }, steam("alice-steam-2"), 409, apierr.Conflict, "unlink it first"},
		{"rejected ticket", func(s setup) string { return s.alice }, steam("nope"), 401, apierr.InvalidCredentials, "rejected"},
		{"sql in ticket", func(s setup) string { return s.alice }, steam(`x'); DELETE FROM identities;--`), 401, apierr.InvalidCredentials, ""},
		{"sql in provider", func(s setup) string { return s.alice }, `{"provider":"steam' OR '1'='1","ticket":"new-steam"}`, 400, apierr.BadRequest, "provider must be"},
		{"unknown provider", func(s setup) string { return s.alice }, `{"provider":"xbox","ticket":"new-steam"}`, 400, apierr.BadRequest, "provider must be"},
		{"missing provider", func(s setup) string { return s.alice }, `{"ticket":"new-steam"}`, 400, apierr.BadRequest, "provider is required"},
		{"id_token for steam", func(s setup) string { return s.alice }, `{"provider":"steam","ticket":"new-steam","id_token":"x"}`, 400, apierr.BadRequest, "takes ticket"},
		{"ticket for epic", func(s setup) string { return s.alice }, `{"provider":"epic","ticket":"x"}`, 400, apierr.BadRequest, "takes id_token"},
		{"missing ticket", func(s setup) string { return s.alice }, `{"provider":"steam"}`, 400, apierr.BadRequest, "ticket is required"},
		{"unknown field", func(s setup) string { return s.alice }, `{"provider":"steam","ticket":"new-steam","player_id":"x"}`, 400, apierr.BadRequest, "unknown field"},
		{"malformed json", func(s setup) string { return s.alice }, `{"provider":`, 400, apierr.BadRequest, "malformed"},
		{"oversized", func(s setup) string { return s.alice }, steam(strings.Repeat("a", 20<<10)), 413, apierr.PayloadTooLarge, ""},
		{"no token", func(s setup) string { return "" }, steam("new-steam"), 401, apierr.Unauthenticated, ""},
		{"forged token", func(s setup) string { return s.forged }, steam("new-steam"), 401, apierr.InvalidToken, ""},
		{"expired token", func(s setup) string { return s.expired }, steam("new-steam"), 401, apierr.TokenExpired, ""},
		{"resume audience", func(s setup) string { return s.resume }, steam("new-steam"), 401, apierr.InvalidToken, ""},
		{"other cell", func(s setup) string { return s.otherCell }, steam("new-steam"), 403, apierr.PermissionDenied, "home cell"},
		{"unknown player", func(s setup) string { return s.ghost }, steam("new-steam"), 404, apierr.UnknownPlayer, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := prepare(t, nil)
			if tt.name == "expired token" {
				s.e.clock.Advance(time.Minute + token.Leeway + time.Second)
			}
			before := s.e.store.writes.Load()
			r := s.e.withBearer(http.MethodPost, accountsapi.PathIdentities, tt.tok(s), tt.body)
			b := r.errBody(t)
			if r.status != tt.wantStatus || b.Code != tt.wantCode || !strings.Contains(b.Message, tt.wantMsg) {
				t.Errorf("status %d body %s, want %d %q with %q", r.status, r.body, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if n := s.e.store.writes.Load() - before; n != 0 {
				t.Errorf("store writes = %d, want 0", n)
			}
			// Nothing moved: alice and bob keep exactly their own.
			for _, c := range []struct{ tok, subject string }{{s.alice, "s-alice"}, {s.bob, "s-bob"}} {
				ids := s.e.meOf(c.tok).Identities
				if len(ids) != 1 || ids[0].Subject != c.subject {
					t.Errorf("identities = %+v, want only %s", ids, c.subject)
				}
			}
		})
	}
}

func TestLinkProviderOff(t *testing.T) {
	e := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Epic = nil })
	alice := e.register("alice", "password1")
	before := e.store.writes.Load()
	r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, alice.AccessToken, `{"provider":"epic","id_token":"x"}`)
	if b := r.errBody(t); r.status != http.StatusForbidden || b.Code != apierr.PermissionDenied || !strings.Contains(b.Message, "not enabled") {
		t.Errorf("link with epic off: status %d body %s, want 403 permission_denied", r.status, r.body)
	}
	if n := e.store.writes.Load() - before; n != 0 || e.epic.calls.Load() != 0 {
		t.Errorf("store writes %d, verifier calls %d; want 0 and 0", n, e.epic.calls.Load())
	}
}

func TestLinkVerifierDown(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.register("alice", "password1")
	e.steam.fail(platform.Unavailable("steam.Verify", errors.New("timeout")))
	before := e.store.writes.Load()
	r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, alice.AccessToken, `{"provider":"steam","ticket":"t"}`)
	if b := r.errBody(t); r.status != http.StatusServiceUnavailable || b.Code != apierr.Unavailable {
		t.Errorf("link with steam down: status %d body %s, want 503 unavailable", r.status, r.body)
	}
	if n := e.store.writes.Load() - before; n != 0 {
		t.Errorf("store writes = %d, want 0", n)
	}
}

func TestUnlink(t *testing.T) {
	tests := []struct {
		name         string
		passwordAuth bool
		account      string // "password" (alice with steam) or "platform" (steam only) or "both" (steam+epic, no password)
		path         string
		wantStatus   int
		wantCode     apierr.Code
		wantMsg      string
		wantLeft     int
	}{
		{"last identity of a platform account", true, "platform", accountsapi.PathIdentity("steam"), 409, apierr.Conflict, "last way to sign in", 1},
		{"last identity, password auth off", false, "password", accountsapi.PathIdentity("steam"), 409, apierr.Conflict, "last way to sign in", 1},
		{"last identity, password remains", true, "password", accountsapi.PathIdentity("steam"), 204, "", "", 0},
		{"one of two", true, "both", accountsapi.PathIdentity("epic"), 204, "", "", 1},
		{"not linked", true, "platform", accountsapi.PathIdentity("epic"), 404, apierr.NotFound, "no epic account", 1},
		{"unknown provider", true, "platform", accountsapi.PathIdentity("xbox"), 404, apierr.NotFound, "unknown identity provider", 1},
		{"sql in provider", true, "platform", accountsapi.PathIdentity("steam' OR '1'='1"), 404, apierr.NotFound, "unknown identity provider", 1},
		{"upper case", true, "platform", accountsapi.PathIdentity("STEAM"), 404, apierr.NotFound, "unknown identity provider", 1},
		{"empty provider", true, "platform", accountsapi.PathIdentities + "/", 404, apierr.NotFound, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) { c.PasswordAuth = tt.passwordAuth })
			e.steam.add("st", "s-1", "")
			e.epic.add("ep", "e-1", "")
			var tok string
			switch tt.account {
			case "password":
				if err := e.store.CreatePlayer(context.Background(), accounts.Player{ID: "p-pw", Username: "alice", PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", HomeCell: cellID}); err != nil {
					t.Fatal(err)
				}
				tok, _, _ = e.signer.IssuePlayer("p-pw", cellID, time.Hour)
				if r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, tok, `{"provider":"steam","ticket":"st"}`); r.status != 201 {
					t.Fatalf("link: %d %s", r.status, r.body)
				}
			default:
				tok = e.platformLogin(accountsapi.PathSteamLogin, steamBody("st"), http.StatusCreated).AccessToken
				if tt.account == "both" {
					if r := e.withBearer(http.MethodPost, accountsapi.PathIdentities, tok, `{"provider":"epic","id_token":"ep"}`); r.status != 201 {
						t.Fatalf("link: %d %s", r.status, r.body)
					}
				}
			}
			before := e.store.writes.Load()
			r := e.withBearer(http.MethodDelete, tt.path, tok, "")
			if r.status != tt.wantStatus {
				t.Fatalf("DELETE %s: status %d body %s, want %d", tt.path, r.status, r.body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if b := r.errBody(t); b.Code != tt.wantCode || !strings.Contains(b.Message, tt.wantMsg) {
					t.Errorf("body %s, want %q with %q", r.body, tt.wantCode, tt.wantMsg)
				}
				if n := e.store.writes.Load() - before; n != 0 {
					t.Errorf("store writes = %d, want 0", n)
				}
			}
			if got := len(e.meOf(tok).Identities); got != tt.wantLeft {
				t.Errorf("identities left = %d, want %d", got, tt.wantLeft)
			}
		})
	}
}

func TestUnlinkTokens(t *testing.T) {
	e := newEnv(t, nil)
	e.steam.add("st", "s-1", "")
	e.epic.add("ep", "e-1", "")
	auth := e.platformLogin(accountsapi.PathSteamLogin, steamBody("st"), http.StatusCreated)
	e.withBearer(http.MethodPost, accountsapi.PathIdentities, auth.AccessToken, `{"provider":"epic","id_token":"ep"}`)
	otherKeys, _ := token.GenerateKeySet()
	forger, _ := token.NewSigner(otherKeys, e.clock.Now)
	forged, _, _ := forger.IssuePlayer(auth.PlayerID, cellID, time.Minute)
	server, _, _ := e.signer.IssueServer(auth.PlayerID, []string{"ops"}, time.Minute)
	tests := []struct {
		name, tok  string
		wantStatus int
		wantCode   apierr.Code
	}{
		{"none", "", 401, apierr.Unauthenticated},
		{"forged", forged, 401, apierr.InvalidToken},
		{"server audience", server, 401, apierr.InvalidToken},
		{"refresh token as access token", auth.RefreshToken, 401, apierr.InvalidToken},
	}
	for _, tt := range tests {
		r := e.withBearer(http.MethodDelete, accountsapi.PathIdentity("epic"), tt.tok, "")
		if b := r.errBody(t); r.status != tt.wantStatus || b.Code != tt.wantCode {
			t.Errorf("%s: status %d body %s, want %d %q", tt.name, r.status, r.body, tt.wantStatus, tt.wantCode)
		}
	}
	if got := len(e.meOf(auth.AccessToken).Identities); got != 2 {
		t.Errorf("identities = %d, want 2 (nothing unlinked)", got)
	}
}

func TestIdentityRoutes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{"GET", accountsapi.PathSteamLogin, 405, "POST"},
		{"GET", accountsapi.PathEpicLogin, 405, "POST"},
		{"GET", accountsapi.PathRefresh, 405, "POST"},
		{"DELETE", accountsapi.PathLogout, 405, "POST"},
		{"GET", accountsapi.PathIdentities, 405, "POST"},
		{"POST", accountsapi.PathIdentity("steam"), 405, "DELETE"},
		{"GET", accountsapi.PathIdentity("steam"), 405, "DELETE"},
		{"DELETE", accountsapi.PathIdentity("steam") + "/extra", 404, ""},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, "", nil, nil)
		if r.status != tt.wantStatus || r.header.Get("Allow") != tt.wantAllow {
			t.Errorf("%s %s: status %d Allow %q, want %d %q", tt.method, tt.path, r.status, r.header.Get("Allow"), tt.wantStatus, tt.wantAllow)
		}
		if b := r.errBody(t); b.Code == "" {
			t.Errorf("%s %s: body %s, want a coded error", tt.method, tt.path, r.body)
		}
	}
}

// The wire names of providers are what the platform verifiers report.
func TestProviderNames(t *testing.T) {
	for _, p := range [][2]string{{accountsapi.ProviderSteam, platform.ProviderSteam}, {accountsapi.ProviderEpic, platform.ProviderEpic}} {
		if p[0] != p[1] {
			t.Errorf("accountsapi provider %q != platform provider %q", p[0], p[1])
		}
	}
}
