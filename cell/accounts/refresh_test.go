package accounts_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
)

func refreshBody(tok string) string {
	b, _ := json.Marshal(accountsapi.RefreshRequest{RefreshToken: tok})
	return string(b)
}

// refresh presents tok and checks the status.
func (e *env) refresh(tok string, wantStatus int) response {
	e.t.Helper()
	r := e.post(accountsapi.PathRefresh, refreshBody(tok))
	if r.status != wantStatus {
		e.t.Fatalf("refresh: status %d body %s, want %d", r.status, r.body, wantStatus)
	}
	return r
}

func TestRefreshRotates(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	c := &accountsapi.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()

	reg, err := c.Register(ctx, accountsapi.RegisterRequest{Username: "alice", Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(reg.RefreshToken)
	if err != nil || len(raw) != 32 || reg.RefreshExpiresIn != 30*24*3600 {
		t.Errorf("refresh token %q (%d bytes, %v), expires in %d; want 32 base64url bytes for 30 days", reg.RefreshToken, len(raw), err, reg.RefreshExpiresIn)
	}

	e.clock.Advance(20 * time.Minute) // the access token has expired
	next, err := c.Refresh(ctx, reg.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh = %v, want nil", err)
	}
	if next.PlayerID != reg.PlayerID || next.HomeCell != cellID || next.RefreshToken == reg.RefreshToken ||
		next.RefreshToken == "" || next.NewAccount || next.ExpiresIn != 900 || next.RefreshExpiresIn != 30*24*3600 {
		t.Errorf("Refresh = %+v, want alice's account with new access and refresh tokens", next)
	}
	claims, err := e.verifier.Verify(next.AccessToken, token.AudiencePlayer)
	if err != nil || claims.Subject != reg.PlayerID || !claims.ExpiresAt.Equal(e.clock.Now().Add(15*time.Minute)) {
		t.Errorf("refreshed access token = %+v, %v; want alice's, valid for 15 minutes from now", claims, err)
	}
	// The chain goes on.
	third, err := c.Refresh(ctx, next.RefreshToken)
	if err != nil || third.PlayerID != reg.PlayerID {
		t.Fatalf("second Refresh = %+v, %v", third, err)
	}
	if got := counterLabel(t, e.reg, "livecell_accounts_refreshes_total", "outcome", "rotated"); got != 2 {
		t.Errorf("refreshes_total{outcome=rotated} = %v, want 2", got)
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register("alice", "password1")
	other := decodeAuth(t, e.post(accountsapi.PathLogin, authBody("alice", "password1"))) // a second device
	next := decodeAuth(t, e.refresh(reg.RefreshToken, http.StatusOK))

	// The original token comes back: a copy is in someone else's hands.
	writes := e.store.writes.Load()
	r := e.refresh(reg.RefreshToken, http.StatusUnauthorized)
	if b := r.errBody(t); b.Code != apierr.InvalidToken || b.Message != "invalid refresh token" {
		t.Errorf("reuse answer %s, want invalid_token %q", r.body, "invalid refresh token")
	}
	if e.store.writes.Load() != writes+1 {
		t.Errorf("reuse wrote %d times, want once (the family's revocation)", e.store.writes.Load()-writes)
	}
	// The whole family is dead, the newest token included.
	e.refresh(next.RefreshToken, http.StatusUnauthorized)
	// The other device's login is its own family and lives on.
	e.refresh(other.RefreshToken, http.StatusOK)

	if got := counterValueNoLabel(t, e.reg, "livecell_accounts_refresh_reuse_total"); got != 1 {
		t.Errorf("refresh_reuse_total = %v, want 1", got)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, "reused") || !strings.Contains(logs, reg.PlayerID) {
		t.Errorf("logs lack a warning naming the player:\n%s", logs)
	}
	for _, secret := range []string{reg.RefreshToken, next.RefreshToken, other.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a refresh token")
		}
	}
}

func TestRefreshRefused(t *testing.T) {
	valid := strings.Repeat("A", 43)
	tests := []struct {
		name  string
		token func(e *env) string
	}{
		{"unknown", func(*env) string { return valid }},
		{"garbage", func(*env) string { return "not-a-token" }},
		{"sql metacharacters", func(*env) string { return `x'); DELETE FROM refresh_tokens;--` }},
		{"one char short", func(*env) string { return valid[:42] }},
		{"one char long", func(*env) string { return valid + "A" }},
		{"padded", func(*env) string { return valid + "=" }},
		{"standard alphabet", func(*env) string { return strings.Repeat("+", 43) }},
		{"non-canonical last char", func(e *env) string {
			tok := e.register("bob", "password1").RefreshToken
			// 43 characters hold 258 bits; flipping the 2 unused low bits
			// decodes to the same bytes leniently, but must not be accepted.
			last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[42])
			return tok[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
		}},
		{"nul", func(*env) string { return valid[:42] + "\x00" }},
		{"access token", func(e *env) string { return e.register("bob", "password1").AccessToken }},
		{"expired", func(e *env) string {
			tok := e.register("bob", "password1").RefreshToken
			e.clock.Advance(30*24*time.Hour + time.Second)
			return tok
		}},
		{"expired exactly", func(e *env) string {
			tok := e.register("bob", "password1").RefreshToken
			e.clock.Advance(30 * 24 * time.Hour)
			return tok
		}},
		{"logged out", func(e *env) string {
			tok := e.register("bob", "password1").RefreshToken
			if r := e.post(accountsapi.PathLogout, refreshBody(tok)); r.status != http.StatusNoContent {
				e.t.Fatalf("logout: %d %s", r.status, r.body)
			}
			return tok
		}},
		{"forged from another server's token", func(e *env) string {
			other := newEnv(e.t, nil)
			return other.register("bob", "password1").RefreshToken
		}},
	}
	var first []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := tt.token(e)
			writes := e.store.writes.Load()
			r := e.post(accountsapi.PathRefresh, refreshBody(tok))
			if b := r.errBody(t); r.status != http.StatusUnauthorized || b.Code != apierr.InvalidToken {
				t.Errorf("status %d body %s, want 401 invalid_token", r.status, r.body)
			}
			// One answer for every kind of dead token: no oracle.
			if first == nil {
				first = r.body
			} else if string(r.body) != string(first) {
				t.Errorf("body %s differs from %s", r.body, first)
			}
			if n := e.store.writes.Load() - writes; n != 0 {
				t.Errorf("store writes = %d, want 0", n)
			}
		})
	}
}

func TestRefreshBadRequests(t *testing.T) {
	tests := []struct {
		name, body, ctype string
		wantStatus        int
		wantCode          apierr.Code
	}{
		{"missing", `{}`, "application/json", 400, apierr.BadRequest},
		{"empty", `{"refresh_token":""}`, "application/json", 400, apierr.BadRequest},
		{"unknown field", `{"refresh_token":"x","player_id":"p"}`, "application/json", 400, apierr.BadRequest},
		{"malformed", `{"refresh_token":`, "application/json", 400, apierr.BadRequest},
		{"wrong type", `{"refresh_token":42}`, "application/json", 400, apierr.BadRequest},
		{"oversized", refreshBody(strings.Repeat("A", 2<<10)), "application/json", 413, apierr.PayloadTooLarge},
		{"form", `refresh_token=x`, "application/x-www-form-urlencoded", 415, apierr.UnsupportedMedia},
	}
	for _, path := range []string{accountsapi.PathRefresh, accountsapi.PathLogout} {
		for _, tt := range tests {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, nil)
				r := e.do(http.MethodPost, path, tt.ctype, strings.NewReader(tt.body), nil)
				if b := r.errBody(t); r.status != tt.wantStatus || b.Code != tt.wantCode {
					t.Errorf("status %d body %s, want %d %q", r.status, r.body, tt.wantStatus, tt.wantCode)
				}
				if n := e.store.writes.Load(); n != 0 {
					t.Errorf("store writes = %d, want 0", n)
				}
			})
		}
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	c := &accountsapi.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	reg, _ := c.Register(ctx, accountsapi.RegisterRequest{Username: "alice", Password: "password1"})
	phone, _ := c.Login(ctx, accountsapi.LoginRequest{Username: "alice", Password: "password1"})
	next, err := c.Refresh(ctx, reg.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// Logging out with an old token of the family ends the family.
	for i := range 2 {
		if err := c.Logout(ctx, reg.RefreshToken); err != nil {
			t.Fatalf("Logout #%d = %v, want nil (idempotent)", i, err)
		}
	}
	if _, err := c.Refresh(ctx, next.RefreshToken); apierr.CodeOf(err) != apierr.InvalidToken {
		t.Errorf("Refresh after logout = %v, want invalid_token", err)
	}
	if _, err := c.Refresh(ctx, phone.RefreshToken); err != nil {
		t.Errorf("other login's Refresh after logout = %v, want nil", err)
	}
	// Unknown and malformed tokens log out "successfully" too.
	for _, tok := range []string{strings.Repeat("A", 43), "garbage", `' OR '1'='1`} {
		if err := c.Logout(ctx, tok); err != nil {
			t.Errorf("Logout(%q) = %v, want nil", tok, err)
		}
	}
}

func TestRefreshTTLConfig(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) { c.RefreshTokenTTL = 2 * time.Hour })
	reg := e.register("alice", "password1")
	if reg.RefreshExpiresIn != 7200 {
		t.Errorf("refresh_expires_in = %d, want 7200", reg.RefreshExpiresIn)
	}
	e.clock.Advance(time.Hour)
	next := decodeAuth(t, e.refresh(reg.RefreshToken, http.StatusOK))
	// Each rotation starts a new lifetime.
	e.clock.Advance(90 * time.Minute)
	third := decodeAuth(t, e.refresh(next.RefreshToken, http.StatusOK))
	e.clock.Advance(2 * time.Hour)
	e.refresh(third.RefreshToken, http.StatusUnauthorized)
	for _, bad := range []time.Duration{time.Minute, 366 * 24 * time.Hour, -time.Hour} {
		_, err := accounts.New(accounts.Config{CellID: cellID, Argon2: cheapArgon2(), RefreshTokenTTL: bad},
			accounts.Deps{Store: e.store, Tokens: e.signer, Verify: verifyPlayer(e.verifier), Homes: e.homes})
		if err == nil || !strings.Contains(err.Error(), "refresh token TTL") {
			t.Errorf("New with refresh TTL %v = %v, want a range error", bad, err)
		}
	}
}

// Concurrent refreshes with one token: one gets new tokens, the others are
// reuse, and the family (the winner's new token included) is revoked.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register("alice", "password1")
	const n = 6
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = e.post(accountsapi.PathRefresh, refreshBody(reg.RefreshToken)) })
	}
	wg.Wait()
	var winner *accountsapi.AuthResponse
	for i, r := range results {
		switch r.status {
		case http.StatusOK:
			if winner != nil {
				t.Errorf("refresh #%d also succeeded, want exactly one", i)
			}
			a := decodeAuth(t, r)
			winner = &a
		case http.StatusUnauthorized:
		default:
			t.Errorf("refresh #%d: status %d body %s, want 200 or 401", i, r.status, r.body)
		}
	}
	if winner == nil {
		t.Fatal("no concurrent refresh succeeded")
	}
	if got := counterValueNoLabel(t, e.reg, "livecell_accounts_refresh_reuse_total"); got != n-1 {
		t.Errorf("refresh_reuse_total = %v, want %d", got, n-1)
	}
	e.refresh(winner.RefreshToken, http.StatusUnauthorized)
}

// counterValueNoLabel reads a counter without labels.
func counterValueNoLabel(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return counterLabel(t, reg, name, "", "")
}

// counterLabel reads the counter name whose label has value ("" label: the
// only series).
func counterLabel(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
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
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestLogsHoldNoTokensOrTickets(t *testing.T) {
	e := newEnv(t, nil)
	const ticket = "1400000057ee7c0ffee5ec7e7"
	e.steam.add(ticket, "76561198000000001", "")
	auth := decodeAuth(t, e.post(accountsapi.PathSteamLogin, steamBody(ticket)))
	e.post(accountsapi.PathSteamLogin, steamBody(ticket+"ff")) // rejected
	next := decodeAuth(t, e.refresh(auth.RefreshToken, http.StatusOK))
	e.refresh(auth.RefreshToken, http.StatusUnauthorized) // reuse: logged at warn
	e.post(accountsapi.PathLogout, refreshBody(next.RefreshToken))
	e.withBearer(http.MethodPost, accountsapi.PathIdentities, auth.AccessToken, `{"provider":"epic","id_token":"`+ticket+`"}`)
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs written, want some to check")
	}
	for _, secret := range []string{ticket, auth.RefreshToken, next.RefreshToken, auth.AccessToken[strings.LastIndexByte(auth.AccessToken, '.')+1:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret)
		}
	}
}
