package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/router"
)

// bot is one simulated player: registered at its home cell, connected to
// its gateway, and, when the home dies, finding its way back the way a
// game client does: ask the router again, dial what it says, resume.
type bot struct {
	n        int
	home     string
	player   string
	access   string // access token: the fallback when resuming fails
	resume   string // resume token from the first Welcome
	conn     *gameclient.Conn
	affected bool   // homed to the cell the drill kills
	via      string // the edge transport it connects through; "" straight to the gateway

	mu   sync.Mutex
	res  BotResult
	last *gameclient.Conn // the session it holds at the end
}

// BotResult is what happened to one bot during a drill.
type BotResult struct {
	Player   string `json:"player"`
	Home     string `json:"home"`
	Affected bool   `json:"affected"`
	// Disconnected is when the bot saw its session end, in ms after the
	// kill (negative: before it); absent when it never did.
	DisconnectedMS *float64 `json:"disconnected_ms,omitempty"`
	// RecoveredMS is when the bot was connected again (Welcome received and
	// a ping answered), in ms after the kill.
	RecoveredMS   *float64 `json:"recovered_ms,omitempty"`
	RecoveredCell string   `json:"recovered_cell,omitempty"`
	Placement     string   `json:"placement,omitempty"` // the router's answer that worked ("edge:<reason>" for edge players)
	Resumed       bool     `json:"resumed,omitempty"`   // with the resume token, not the access token
	Attempts      int      `json:"attempts,omitempty"`  // resolve-and-dial rounds
	// Transport is how an edge player reaches the edge (tcp, quic, ws);
	// empty for a player connected straight to its gateway.
	Transport string `json:"transport,omitempty"`
	// Interrupted counts an edge player's requests that failed with a
	// retryable code (session_moved: in flight when its session moved).
	Interrupted int    `json:"interrupted,omitempty"`
	Error       string `json:"error,omitempty"`
}

// botEnv is what bots share.
type botEnv struct {
	routers []string
	http    *http.Client
	edge    *edgeTarget // nil when the world runs no edge
	stats   resolveStats
}

// resolveStats counts router answers: the drill asserts the routers kept
// answering while a cell died.
type resolveStats struct {
	mu        sync.Mutex
	total     int
	failed    int
	placement map[string]int // answers by placement
	errs      []string       // the first few failures
}

func (s *resolveStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total, s.failed, s.placement, s.errs = 0, 0, nil, nil
}

func (s *resolveStats) record(res router.Resolution, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if err != nil {
		s.failed++
		if len(s.errs) < 5 {
			s.errs = append(s.errs, err.Error())
		}
		return
	}
	if s.placement == nil {
		s.placement = map[string]int{}
	}
	s.placement[string(res.Placement)]++
}

// register creates the bot's account at its home cell (the router places a
// new player by hint) and connects it to the cell's gateway, or through the
// edge over via.
func (e *botEnv) register(ctx context.Context, n int, home, via string) (*bot, error) {
	res, err := e.resolve(ctx, e.routers[n%len(e.routers)], url.Values{"region_hint": {home}})
	if err != nil {
		return nil, fmt.Errorf("bot %d: resolve a new player for %s: %w", n, home, err)
	}
	if res.HomeCell != home {
		return nil, fmt.Errorf("bot %d: router placed a new player hinted at %s in %s", n, home, res.HomeCell)
	}
	acc := accountsapi.Client{BaseURL: "http://" + res.API, HTTP: e.http}
	auth, err := acc.Register(ctx, accountsapi.RegisterRequest{Username: "chaos-" + randHex(8), Password: randHex(16)})
	if err != nil {
		return nil, fmt.Errorf("bot %d: register at %s: %w", n, home, err)
	}
	if auth.HomeCell != home {
		return nil, fmt.Errorf("bot %d: registered at %s but homed to %s", n, home, auth.HomeCell)
	}
	opts := gameclient.Options{Token: auth.AccessToken, Client: "livecell-chaos"}
	var conn *gameclient.Conn
	if via != "" {
		conn, err = e.edge.dial(ctx, via, opts)
	} else {
		conn, err = gameclient.Dial(ctx, res.Gateway, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("bot %d: connect to %s: %w", n, home, err)
	}
	if got := conn.Welcome().Cell; got != home {
		conn.Close()
		return nil, fmt.Errorf("bot %d: gateway of %s welcomed it as cell %q", n, home, got)
	}
	b := &bot{n: n, home: home, via: via, player: auth.PlayerID, access: auth.AccessToken, resume: conn.Welcome().ResumeToken, conn: conn, last: conn}
	b.res = BotResult{Player: b.player, Home: home, Transport: via}
	return b, nil
}

// watch waits for the bot's session to end (or stop). An unaffected bot
// only records it: it must never happen. An affected one reconnects until
// deadline.
func (e *botEnv) watch(ctx context.Context, b *bot, target string, kill *killClock, stop <-chan struct{}) {
	select {
	case <-b.conn.Done():
	case <-stop:
		return
	}
	seen := time.Now()
	killAt, ok := kill.when()
	if !ok {
		// Lost before the kill: nothing the drill did explains it.
		b.mu.Lock()
		b.res.Error = fmt.Sprintf("session ended before the kill: %v", b.conn.Err())
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	b.res.DisconnectedMS = msPtr(seen.Sub(killAt))
	if !b.affected {
		b.res.Error = fmt.Sprintf("session on an unaffected cell ended: %v", b.conn.Err())
	}
	b.mu.Unlock()
	if b.affected {
		e.recover(ctx, b, target, killAt)
	}
}

// recover is the game client's failover: resolve, dial, resume; retry with
// a short backoff. ctx carries the drill's bound.
func (e *botEnv) recover(ctx context.Context, b *bot, target string, killAt time.Time) {
	backoff := 25 * time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		conn, res, resumed, err := e.reconnect(ctx, b, attempt)
		if err == nil && res.HomeCell == target {
			// The router has not noticed yet, and the dead gateway still
			// answered? Impossible after SIGKILL, but never count it.
			conn.Close()
			err = fmt.Errorf("router still sends the player to %s", target)
		}
		if err == nil {
			at := time.Now()
			b.mu.Lock()
			b.last = conn
			b.res.RecoveredMS = msPtr(at.Sub(killAt))
			b.res.RecoveredCell, b.res.Placement, b.res.Resumed, b.res.Attempts = res.HomeCell, string(res.Placement), resumed, attempt
			b.mu.Unlock()
			return
		}
		lastErr = err
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			b.mu.Lock()
			b.res.Attempts = attempt
			b.res.Error = fmt.Sprintf("not reconnected within the bound: %v", lastErr)
			b.mu.Unlock()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// reconnect makes one attempt: ask a router where the player belongs now
// and connect there, resuming the old session, or logging in with the
// access token when the gateway refuses the resume token.
func (e *botEnv) reconnect(ctx context.Context, b *bot, attempt int) (*gameclient.Conn, router.Resolution, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := e.resolve(rctx, e.routers[(b.n+attempt)%len(e.routers)], url.Values{"player": {b.player}})
	if err != nil {
		return nil, res, false, fmt.Errorf("resolve: %w", err)
	}
	if res.HomeCell == "" || res.Gateway == "" {
		return nil, res, false, fmt.Errorf("resolve answered no gateway: %+v", res)
	}
	if b.resume != "" {
		conn, err := e.dial(rctx, res, gameclient.Options{ResumeToken: b.resume, Client: "livecell-chaos"})
		if err == nil {
			return conn, res, true, nil
		}
		switch apierr.CodeOf(err) {
		case apierr.InvalidToken, apierr.TokenExpired, apierr.Unauthenticated, apierr.PermissionDenied:
		default:
			return nil, res, false, err
		}
	}
	conn, err := e.dial(rctx, res, gameclient.Options{Token: b.access, Client: "livecell-chaos"})
	return conn, res, false, err
}

// dial connects and proves the session works: the Welcome names the cell
// the router chose, and a ping is answered.
func (e *botEnv) dial(ctx context.Context, res router.Resolution, o gameclient.Options) (*gameclient.Conn, error) {
	conn, err := gameclient.Dial(ctx, res.Gateway, o)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", res.HomeCell, err)
	}
	if got := conn.Welcome().Cell; got != res.HomeCell {
		conn.Close()
		return nil, fmt.Errorf("gateway %s welcomed the player as cell %q, router said %q", res.Gateway, got, res.HomeCell)
	}
	if _, err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping on %s: %w", res.HomeCell, err)
	}
	return conn, nil
}

// resolve asks one router and counts the answer, unless the caller gave up
// first (the drill's bound passing is not the router's failure).
func (e *botEnv) resolve(ctx context.Context, base string, q url.Values) (router.Resolution, error) {
	res, err := e.ask(ctx, base, q)
	if ctx.Err() == nil {
		e.stats.record(res, err)
	}
	return res, err
}

// ask asks one router. Any answer but 200 is an error carrying the
// router's code.
func (e *botEnv) ask(ctx context.Context, base string, q url.Values) (router.Resolution, error) {
	var res router.Resolution
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/resolve?"+q.Encode(), nil)
	if err != nil {
		return res, err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return res, apierr.Wrap("chaos.resolve", apierr.Unavailable, "router unreachable at "+base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb httpapi.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return res, apierr.Wrap("chaos.resolve", eb.Code, eb.Message, fmt.Errorf("router %s: HTTP %d", base, resp.StatusCode))
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("router %s: decode resolve answer: %w", base, err)
	}
	return res, nil
}

// result returns a copy of the bot's outcome.
func (b *bot) result() BotResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.res
}

// close ends whatever session the bot holds.
func (b *bot) close() {
	b.mu.Lock()
	conns := []*gameclient.Conn{b.conn, b.last}
	b.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func msPtr(d time.Duration) *float64 { v := ms(d); return &v }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
