package accounts_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
)

// from sends a JSON POST as if from the client address addr (host:port),
// with optional extra headers.
func (e *env) from(addr, path, body string, hdr map[string]string) response {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.RemoteAddr = addr
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func withLimits(source, account accounts.Bucket) func(*accounts.Config, *accounts.Deps) {
	return func(c *accounts.Config, _ *accounts.Deps) {
		c.RateLimit.PerSource, c.RateLimit.PerAccount = source, account
	}
}

func wantRateLimited(t *testing.T, r response, wantRetry string) {
	t.Helper()
	b := r.errBody(t)
	if r.status != http.StatusTooManyRequests || b.Code != apierr.RateLimited {
		t.Errorf("status %d body %s, want 429 rate_limited", r.status, r.body)
	}
	got := r.header.Get("Retry-After")
	if wantRetry != "" && got != wantRetry {
		t.Errorf("Retry-After = %q, want %q", got, wantRetry)
	}
	if secs, err := strconv.Atoi(got); err != nil || secs < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", got)
	}
}

// Failed password logins on one name run out of the name's bucket, whatever
// address they come from; names with and without an account behave alike.
func TestRateLimitPerAccount(t *testing.T) {
	e := newEnv(t, withLimits(accounts.Bucket{Burst: 1000, Every: time.Millisecond}, accounts.Bucket{Burst: 8, Every: time.Minute}))
	e.register("alice", "password1")
	var sequences [2][]int
	for i, name := range []string{"alice", "nobody"} {
		for attempt := range 3 {
			addr := "198.51.100." + strconv.Itoa(10*i+attempt) + ":4000"
			r := e.from(addr, accountsapi.PathLogin, authBody(name, "wrong-password"), nil)
			sequences[i] = append(sequences[i], r.status)
			if attempt == 2 {
				// 8 tokens, failures cost 4: the third attempt waits for one.
				wantRateLimited(t, r, "60")
			}
		}
	}
	if got, want := sequences[1], sequences[0]; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("statuses for an unknown name %v, for an existing one %v; want the same", got, want)
	}
	if sequences[0][0] != http.StatusUnauthorized || sequences[0][1] != http.StatusUnauthorized {
		t.Errorf("first two failures = %v, want 401 401", sequences[0][:2])
	}
	// The right password is held back too, until the bucket refills.
	wantRateLimited(t, e.from("203.0.113.1:1", accountsapi.PathLogin, authBody("alice", "password1"), nil), "")
	// Rate-limited attempts ran no argon2: register + 2 failures per name.
	if got := histogramCount(t, e.reg, "livecell_accounts_password_hash_seconds"); got != 5 {
		t.Errorf("argon2 runs = %d, want 5 (refused attempts must not hash)", got)
	}
	e.clock.Advance(time.Minute)
	if r := e.from("203.0.113.1:1", accountsapi.PathLogin, authBody("ALICE", "password1"), nil); r.status != http.StatusOK {
		t.Errorf("login after the wait: status %d body %s, want 200", r.status, r.body)
	}
	if got := counterLabel(t, e.reg, "livecell_accounts_rate_limited_total", "limit", "account"); got != 3 {
		t.Errorf("rate_limited_total{limit=account} = %v, want 3", got)
	}
}

// Every sign-in endpoint is limited per source address, before its body is
// read: a refused request calls no verifier and writes nothing.
func TestRateLimitPerSource(t *testing.T) {
	endpoints := []struct {
		name, path, body string
		bearer           bool
	}{
		{"register", accountsapi.PathRegister, authBody("x", "password1"), false},
		{"login", accountsapi.PathLogin, authBody("alice", "password1"), false},
		{"steam", accountsapi.PathSteamLogin, steamBody("st"), false},
		{"epic", accountsapi.PathEpicLogin, epicBody("ep"), false},
		{"refresh", accountsapi.PathRefresh, refreshBody(strings.Repeat("A", 43)), false},
		{"logout", accountsapi.PathLogout, refreshBody(strings.Repeat("A", 43)), false},
		{"link", accountsapi.PathIdentities, `{"provider":"steam","ticket":"st"}`, true},
	}
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			e := newEnv(t, withLimits(accounts.Bucket{Burst: 5, Every: time.Minute}, accounts.Bucket{Burst: 1000, Every: time.Millisecond}))
			e.steam.add("st", "s-1", "")
			e.epic.add("ep", "e-1", "")
			hdr := map[string]string{}
			if ep.bearer {
				tok, _, _ := e.signer.IssuePlayer("p-1", cellID, time.Hour)
				hdr["Authorization"] = "Bearer " + tok
			}
			const addr = "198.51.100.7:1000"
			// Malformed requests cost a token each (no surcharge).
			for i := range 5 {
				if r := e.from(addr, ep.path, `{"bogus":1}`, hdr); r.status != http.StatusBadRequest {
					t.Fatalf("malformed request #%d: status %d body %s, want 400", i, r.status, r.body)
				}
			}
			writes, calls := e.store.writes.Load(), e.steam.calls.Load()+e.epic.calls.Load()
			wantRateLimited(t, e.from(addr, ep.path, ep.body, hdr), "60")
			// Another port of the same address is the same source.
			wantRateLimited(t, e.from("198.51.100.7:2000", ep.path, ep.body, hdr), "")
			if n := e.store.writes.Load() - writes; n != 0 {
				t.Errorf("store writes while limited = %d, want 0", n)
			}
			if n := e.steam.calls.Load() + e.epic.calls.Load() - calls; n != 0 {
				t.Errorf("verifier calls while limited = %d, want 0", n)
			}
			// Another address is not affected.
			if r := e.from("198.51.100.8:1000", ep.path, `{"bogus":1}`, hdr); r.status != http.StatusBadRequest {
				t.Errorf("other address: status %d body %s, want 400", r.status, r.body)
			}
		})
	}
}

// A failure costs FailureCost tokens, a success one.
func TestRateLimitFailuresCostMore(t *testing.T) {
	limits := withLimits(accounts.Bucket{Burst: 8, Every: time.Minute}, accounts.Bucket{Burst: 1000, Every: time.Millisecond})
	count := func(ticket string) int {
		e := newEnv(t, limits)
		e.steam.add("good", "s-1", "")
		n := 0
		for n < 20 {
			r := e.post(accountsapi.PathSteamLogin, steamBody(ticket))
			if r.status == http.StatusTooManyRequests {
				return n
			}
			n++
		}
		return n
	}
	if got := count("good"); got != 8 {
		t.Errorf("successful logins admitted from a bucket of 8 = %d, want 8", got)
	}
	if got := count("bad"); got != 2 {
		t.Errorf("failed logins admitted from a bucket of 8 at cost 4 = %d, want 2", got)
	}
}

// X-Forwarded-For is only believed when a trusted proxy is configured.
func TestRateLimitForwardedFor(t *testing.T) {
	tests := []struct {
		hops        int
		wantLimited bool
	}{
		{0, true},  // every request is the proxy's address: one bucket
		{1, false}, // each client its own bucket
	}
	for _, tt := range tests {
		e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) {
			c.RateLimit.PerSource = accounts.Bucket{Burst: 4, Every: time.Hour}
			c.RateLimit.TrustedProxyHops = tt.hops
		})
		limited := false
		for i := range 6 {
			// A client may prepend anything; the proxy appends the real address.
			xff := "6.6.6.6, 198.51.100." + strconv.Itoa(i)
			r := e.from("10.0.0.1:443", accountsapi.PathRefresh, `{}`, map[string]string{"X-Forwarded-For": xff})
			limited = limited || r.status == http.StatusTooManyRequests
		}
		if limited != tt.wantLimited {
			t.Errorf("hops %d: limited = %v, want %v", tt.hops, limited, tt.wantLimited)
		}
	}
}

func TestRateLimitDisabled(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config, _ *accounts.Deps) {
		c.RateLimit = accounts.RateLimitConfig{Disabled: true, PerSource: accounts.Bucket{Burst: 1, Every: time.Hour}}
	})
	for i := range 50 {
		if r := e.post(accountsapi.PathRefresh, refreshBody(strings.Repeat("A", 43))); r.status != http.StatusUnauthorized {
			t.Fatalf("request #%d with limits disabled: status %d, want 401", i, r.status)
		}
	}
}
