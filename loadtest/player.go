package loadtest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/loadtest/scenario"
)

// Backoff after a failed sign-in or connect: a target that refuses
// connections gets a steady trickle of attempts, not a storm.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// pushBuffer is each session's queue of unread pushes. The player reads
// them as they come, except while it waits for a response; gameclient's
// default of 256 would cost 14 KB per idle session, a third of what a
// simulated session costs here.
const pushBuffer = 32

// player is one simulated game client. It keeps what a client keeps
// between sessions (its account, tokens, home cell, resume token) and
// follows the scenario: sign in, connect, send its share of the request
// mix, read pushes, end sessions and come back, move when the server says
// so, and recover from lost connections with backoff.
type player struct {
	e   *engine
	n   int // index over every shard; names the player
	rnd *rand.Rand

	cell     string // home cell the scenario assigns ("" lets the router place it)
	id       string // player id, once known
	username string
	password string

	registered bool
	access     string
	accessExp  time.Time
	refresh    string
	home       string // home cell as the server sees it
	gateway    string // where to connect; "" means find out again
	api        string // accounts API of the home cell
	resume     string // resume token of the last session
	failures   int    // consecutive failed sign-ins or connects

	conn    *gameclient.Conn
	dropped uint64 // pushes conn had dropped when last counted
}

func newPlayer(e *engine, n int) *player {
	p := &player{
		e: e, n: n,
		rnd:      rand.New(rand.NewPCG(uint64(e.seed), uint64(n))),
		username: e.username(n),
		password: e.password,
	}
	if len(e.cells) > 0 {
		p.cell = e.cells[n%len(e.cells)]
	}
	return p
}

// run plays every stretch of the run the schedule makes this player
// active, and returns when the run ends.
func (p *player) run(ctx context.Context) {
	for _, span := range p.e.sc.Active(p.n) {
		if !sleepUntil(ctx, p.e.start.Add(span.From)) {
			return
		}
		sctx, cancel := context.WithDeadline(ctx, p.e.start.Add(span.To))
		p.active(sctx)
		cancel()
		p.disconnect()
	}
}

// active keeps the player connected and playing until ctx ends.
func (p *player) active(ctx context.Context) {
	for ctx.Err() == nil {
		if p.conn == nil {
			if err := p.signIn(ctx); err != nil {
				p.backoff(ctx)
				continue
			}
			if err := p.connect(ctx); err != nil {
				p.backoff(ctx)
				continue
			}
			p.failures = 0
		}
		p.session(ctx)
	}
}

// backoff waits after a failure: exponential with full jitter.
func (p *player) backoff(ctx context.Context) {
	p.failures++
	ceiling := min(maxBackoff, minBackoff<<min(p.failures-1, 10))
	sleep(ctx, time.Duration(p.rnd.Int64N(int64(ceiling)))+minBackoff/2)
}

// connect opens a session: with the resume token of the previous one when
// the scenario resumes, else with the access token.
func (p *player) connect(ctx context.Context) error {
	addr := p.gateway
	if p.e.sc.Connect.Via == scenario.ViaEdge {
		addr = p.e.edgeFor(p)
	}
	if p.e.sc.Session.Resume && p.resume != "" {
		conn, err := p.dial(ctx, addr, gameclient.Options{ResumeToken: p.resume}, p.e.ops.reconnect)
		if err == nil {
			return p.opened(conn)
		}
		p.resume = ""
		switch apierr.CodeOf(err) {
		case apierr.InvalidToken, apierr.TokenExpired, apierr.Unauthenticated, apierr.PermissionDenied:
			// The session is gone for good: sign in afresh below.
		default:
			p.lost(err)
			return err
		}
	}
	conn, err := p.dial(ctx, addr, gameclient.Options{Token: p.access}, p.e.ops.connect)
	if err != nil {
		p.lost(err)
		return err
	}
	return p.opened(conn)
}

// dial connects and says Hello, timing it as op.
func (p *player) dial(ctx context.Context, addr string, o gameclient.Options, op int) (*gameclient.Conn, error) {
	o.Client = "livecell-loadtest"
	o.PushBuffer = pushBuffer
	o.RequestTimeout = p.e.sc.Connect.Timeout
	o.Heartbeat = p.e.sc.Connect.Heartbeat
	dctx, cancel := context.WithTimeout(ctx, p.e.sc.Connect.Timeout)
	defer cancel()
	start := time.Now()
	nc, err := p.e.transport.Dial(dctx, addr, p.e.local)
	var conn *gameclient.Conn
	if err == nil {
		conn, err = gameclient.NewConn(dctx, nc, o)
	}
	p.e.result(ctx, op, start, start, err)
	return conn, err
}

func (p *player) opened(conn *gameclient.Conn) error {
	p.conn, p.dropped = conn, 0
	w := conn.Welcome()
	p.resume, p.id = w.ResumeToken, w.PlayerID
	if w.Cell != "" {
		p.home = w.Cell
	}
	p.e.rec.SessionUp()
	return nil
}

// lost reacts to a failed connect: a token the gateway refuses is signed
// in again; a gateway that cannot be reached is looked up again (its cell
// may have failed over); one that asks the player to go elsewhere is
// followed.
func (p *player) lost(err error) {
	var re *gameclient.ReconnectError
	switch {
	case errors.As(err, &re):
		p.follow(re.Reconnect)
	case apierr.CodeOf(err) == apierr.TokenExpired || apierr.CodeOf(err) == apierr.InvalidToken:
		p.access = ""
	case p.failures >= 1:
		p.gateway = ""
	}
}

// follow takes a Reconnect instruction: the gateway it names (or a fresh
// lookup), and its resume token.
func (p *player) follow(rc protocol.Reconnect) {
	p.e.rec.Event(movedPrefix + rc.Reason)
	p.gateway = rc.Gateway
	if rc.ResumeToken != "" {
		p.resume = rc.ResumeToken
	}
}

// session runs one connected session until ctx ends, the session's length
// is up, the connection is lost or the server moves the player.
func (p *player) session(ctx context.Context) {
	conn := p.conn
	sc := p.e.sc
	var (
		ends    <-chan time.Time
		sendT   *time.Timer
		sendC   <-chan time.Time
		next    time.Time
		reqs    = sc.Requests
		openLp  = reqs.OpenLoop()
		closedL = !reqs.Think.IsZero()
	)
	if !sc.Session.Length.IsZero() {
		t := time.NewTimer(sc.Session.Length.Pick(p.rnd))
		defer t.Stop()
		ends = t.C
	}
	switch {
	case openLp:
		// A random phase spreads players over the interval instead of
		// sending in lockstep.
		next = time.Now().Add(time.Duration(p.rnd.Float64() * float64(p.interval())))
		sendT = time.NewTimer(time.Until(next))
		sendC = sendT.C
	case closedL:
		sendT = time.NewTimer(reqs.Think.Pick(p.rnd))
		sendC = sendT.C
	}
	if sendT != nil {
		defer sendT.Stop()
	}
	// Both close when the connection ends; a closed channel is always
	// ready, so stop selecting on it and let Done report.
	pushes, moves := conn.Pushes(), conn.Reconnects()
	for {
		select {
		case <-ctx.Done():
			return
		case <-conn.Done():
			p.closed(conn.Err())
			return
		case rc, ok := <-moves:
			if !ok {
				moves = nil
				continue
			}
			p.follow(rc)
			p.hangUp()
			sleep(ctx, time.Duration(rc.RetryAfterMS)*time.Millisecond)
			return
		case push, ok := <-pushes:
			if !ok {
				pushes = nil
				continue
			}
			p.e.rec.Push(push.Topic)
		case <-ends:
			p.e.rec.Event(sessionEndedEvent)
			p.hangUp()
			sleep(ctx, sc.Session.Offline.Pick(p.rnd))
			return
		case <-sendC:
			op := reqs.Pick(p.rnd.Float64())
			if openLp {
				p.request(ctx, op, next)
				// The schedule does not wait for the server: a slow answer
				// makes the next sends late, and their latency counts from
				// when they were due.
				next = next.Add(p.interval())
				sendT.Reset(time.Until(next))
			} else {
				p.request(ctx, op, time.Now())
				sendT.Reset(reqs.Think.Pick(p.rnd))
			}
		}
	}
}

// interval is the time to the next scheduled send.
func (p *player) interval() time.Duration {
	mean := float64(time.Second) / p.e.sc.Requests.Rate
	if p.e.sc.Requests.Arrival == scenario.ArrivalPoisson {
		return time.Duration(p.rnd.ExpFloat64() * mean)
	}
	return time.Duration(mean)
}

// request sends one request of the mix, due at intended. A request sent
// before the player's active time ends is answered (or times out) before
// the player leaves: every request the server sees is counted.
func (p *player) request(ctx context.Context, op *scenario.Op, intended time.Time) {
	rctx := context.WithoutCancel(ctx)
	idx := p.e.ops.mix[op.Name]
	start := time.Now()
	_, err := p.conn.Request(rctx, op.Opcode, op.Payload)
	p.e.result(rctx, idx, intended, start, err)
}

// closed records why the session ended without the player closing it.
func (p *player) closed(err error) {
	p.e.rec.Event(disconnectPrefix + errorKind(err))
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.TokenExpired {
		p.access = ""
	}
	p.release()
}

// hangUp ends the session from the player's side (Bye).
func (p *player) hangUp() {
	p.conn.Close()
	p.release()
}

// release forgets the session, counting what it dropped.
func (p *player) release() {
	p.e.rec.PushesDropped(int64(p.conn.Dropped() - p.dropped))
	p.e.rec.SessionDown()
	p.conn = nil
}

// disconnect ends the session, if any, when the player goes inactive.
func (p *player) disconnect() {
	if p.conn != nil {
		p.hangUp()
	}
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	return sleep(ctx, time.Until(t))
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// expires converts a token's lifetime in seconds into when to renew it: a
// little early, so a session never starts with a token about to lapse.
func expires(now time.Time, seconds int) time.Time {
	life := time.Duration(seconds) * time.Second
	return now.Add(time.Duration(math.Max(float64(life)*0.8, float64(life-time.Minute))))
}
