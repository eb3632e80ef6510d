// Package probe checks a livecell world end to end the way a game client
// uses it: resolve the home cell at the router, register (or log in) at that
// cell, open a gateway session, ping, make one request, and check that the
// router's answer is sticky. Each step is timed; the first failure names its
// stage.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

// Options configures one probe run.
type Options struct {
	RouterURL  string // e.g. http://127.0.0.1:4100
	RegionHint string // optional: cell id or cloud region
	Username   string // log in as this player; empty registers a fresh one
	Password   string
	HTTP       *http.Client
}

// Result is what `livecell probe --json` prints.
type Result struct {
	OK        bool    `json:"ok"`
	Player    string  `json:"player,omitempty"`
	HomeCell  string  `json:"home_cell,omitempty"`
	Gateway   string  `json:"gateway,omitempty"`
	ResolveMS float64 `json:"resolve_ms"`
	LoginMS   float64 `json:"login_ms"`
	ConnectMS float64 `json:"connect_ms"`
	RTTMS     float64 `json:"rtt_ms"`
	RequestMS float64 `json:"request_ms"`
	Stage     string  `json:"stage,omitempty"` // where it failed
	Code      string  `json:"code,omitempty"`  // the server's error code, if any
	Error     string  `json:"error,omitempty"`
}

// resolution is the part of the router's /v1/resolve answer the probe reads.
type resolution struct {
	PlayerID  string `json:"player_id"`
	HomeCell  string `json:"home_cell"`
	Gateway   string `json:"gateway"`
	API       string `json:"api"`
	Placement string `json:"placement"`
}

// Run probes the world. It always returns a Result; the error is non-nil
// exactly when Result.OK is false.
func Run(ctx context.Context, o Options) (Result, error) {
	var r Result
	fail := func(stage string, err error) (Result, error) {
		r.OK, r.Stage, r.Error = false, stage, err.Error()
		if e, ok := apierr.From(err); ok {
			r.Code = string(e.Code)
		}
		return r, fmt.Errorf("probe: %s: %w", stage, err)
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}

	start := time.Now()
	res, err := resolve(ctx, hc, o.RouterURL, url.Values{"region_hint": nonEmpty(o.RegionHint)})
	r.ResolveMS = ms(time.Since(start))
	if err != nil {
		return fail("resolve", err)
	}
	r.HomeCell, r.Gateway = res.HomeCell, res.Gateway

	acc := accountsapi.Client{BaseURL: "http://" + res.API, HTTP: hc}
	start = time.Now()
	var auth accountsapi.AuthResponse
	if o.Username != "" {
		auth, err = acc.Login(ctx, accountsapi.LoginRequest{Username: o.Username, Password: o.Password})
	} else {
		auth, err = acc.Register(ctx, accountsapi.RegisterRequest{Username: "probe-" + randHex(6), Password: randHex(16)})
	}
	r.LoginMS = ms(time.Since(start))
	if err != nil {
		return fail("login", err)
	}
	r.Player = auth.PlayerID

	// A known player must resolve to the same home: placement is sticky.
	again, err := resolve(ctx, hc, o.RouterURL, url.Values{"player": {auth.PlayerID}})
	if err != nil {
		return fail("resolve-again", err)
	}
	if again.HomeCell != auth.HomeCell {
		return fail("resolve-again", fmt.Errorf("router homes player %s to %s, accounts to %s", auth.PlayerID, again.HomeCell, auth.HomeCell))
	}
	if again.HomeCell != res.HomeCell && o.Username == "" {
		return fail("resolve-again", fmt.Errorf("new player placed in %s but registered in %s", res.HomeCell, again.HomeCell))
	}
	r.HomeCell, r.Gateway = again.HomeCell, again.Gateway

	start = time.Now()
	conn, err := gameclient.Dial(ctx, again.Gateway, gameclient.Options{Token: auth.AccessToken, Client: "livecell-probe"})
	r.ConnectMS = ms(time.Since(start))
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close()

	rtt, err := conn.Ping(ctx)
	if err != nil {
		return fail("ping", err)
	}
	r.RTTMS = ms(rtt)

	start = time.Now()
	payload, err := conn.Request(ctx, protocol.OpAccountsMe, nil)
	r.RequestMS = ms(time.Since(start))
	if err != nil {
		return fail("request", err)
	}
	var me accountsapi.Me
	if err := json.Unmarshal(payload, &me); err != nil {
		return fail("request", fmt.Errorf("decode accounts.me: %w", err))
	}
	if me.PlayerID != auth.PlayerID {
		return fail("request", fmt.Errorf("accounts.me answered for %q, want %q", me.PlayerID, auth.PlayerID))
	}
	r.OK = true
	return r, nil
}

func resolve(ctx context.Context, hc *http.Client, base string, q url.Values) (resolution, error) {
	var res resolution
	u := strings.TrimRight(base, "/") + "/v1/resolve"
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	err := httpapi.Do(ctx, hc, httpapi.Call{Op: "probe.resolve", Peer: "router", Method: http.MethodGet, URL: u, Out: &res})
	if err != nil {
		return res, err
	}
	if res.HomeCell == "" || res.Gateway == "" || res.API == "" {
		return res, errors.New("resolve answer lacks home_cell, gateway or api")
	}
	return res, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
