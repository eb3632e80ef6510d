package steam

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Why this is not net/http: see the package doc. In short, Transport hands
// every round trip to two goroutines of its own, which measured some 15–20
// µs more CPU per login; here the caller's goroutine does the I/O, and only
// the parsing is left to net/http (http.ReadResponse).

const (
	// maxIdleConns bounds the idle conns kept for a login burst; more than
	// that would only hold file descriptors and Steam's sockets.
	maxIdleConns = 256
	// maxIdleAge is net/http's IdleConnTimeout: load balancers in front of
	// Steam drop idle conns after a while, and a conn they dropped costs a
	// failed write and a retry.
	maxIdleAge = 90 * time.Second
	// max1xx bounds interim answers before the real one, as net/http does.
	max1xx = 5
)

// longAgo is a deadline that has passed: setting it makes the conn's
// blocked Read or Write return at once, which is how a caller's
// cancellation reaches I/O in progress.
var longAgo = time.Unix(1, 0)

// client does one kind of GET (everything but the ticket fixed) on a pool
// of keep-alive conns to one host. It is safe for concurrent use.
type client struct {
	addr string      // host:port to dial
	tls  *tls.Config // nil for http
	// head and tail are the request around the ticket, built once: only the
	// ticket differs between calls.
	head, tail string
	maxIdle    int
	maxIdleAge time.Duration

	mu sync.Mutex
	// idle is a LIFO: the most recently used conn is the one most likely
	// still open at the far end, and under light load the bottom ones age
	// out instead of all being kept barely alive.
	idle   []*conn
	closed bool
}

type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	wbuf   []byte // the request; kept so that a call allocates none
	idleAt time.Time
	reused bool // taken from the pool, so the far end may have closed it
}

// newClient prepares GETs of base's host with request target
// target+ticket. tlsConf (https only) is cloned; nil means the system
// roots.
func newClient(base *url.URL, target string, tlsConf *tls.Config) (*client, error) {
	c := &client{
		head:       "GET " + target,
		tail:       " HTTP/1.1\r\nHost: " + base.Host + "\r\nAccept: application/json\r\nUser-Agent: livecell\r\n\r\n",
		maxIdle:    maxIdleConns,
		maxIdleAge: maxIdleAge,
	}
	port := base.Port()
	switch base.Scheme {
	case "https":
		if port == "" {
			port = "443"
		}
		c.tls = tlsConf.Clone()
		if c.tls == nil {
			c.tls = &tls.Config{}
		}
		if c.tls.ServerName == "" {
			c.tls.ServerName = base.Hostname()
		}
		c.tls.MinVersion = max(c.tls.MinVersion, tls.VersionTLS12)
		// We speak HTTP/1.1 only; without this a server could pick h2.
		c.tls.NextProtos = []string{"http/1.1"}
	case "http":
		if tlsConf != nil {
			return nil, errors.New("TLS is set but BaseURL is http")
		}
		if port == "" {
			port = "80"
		}
	}
	c.addr = net.JoinHostPort(base.Hostname(), port)
	return c, nil
}

// get sends the request for ticket and returns the answer with its body
// read (and the Body closed). Errors name no URL: the caller adds the part
// without the key. deadline bounds the whole call, retry included.
func (c *client) get(ctx context.Context, deadline time.Time, ticket string) (*http.Response, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	pc := c.takeIdle()
	if pc == nil {
		var err error
		if pc, err = c.dial(ctx, deadline); err != nil {
			return nil, nil, err
		}
	}
	resp, body, retry, err := c.exchange(ctx, pc, deadline, ticket)
	if !retry {
		return resp, body, err
	}
	// The pooled conn had been closed by the far end before our request
	// got an answer. GET is idempotent, so ask once more on a new conn, as
	// net/http does; a new conn's failure is an answer.
	if pc, err = c.dial(ctx, deadline); err != nil {
		return nil, nil, err
	}
	resp, body, _, err = c.exchange(ctx, pc, deadline, ticket)
	return resp, body, err
}

// exchange does one round trip on pc, then pools or closes it. retry says
// that pc was a stale pooled conn and nothing was learnt from it.
func (c *client) exchange(ctx context.Context, pc *conn, deadline time.Time, ticket string) (resp *http.Response, body []byte, retry bool, err error) {
	// An error here means pc is closed, which the write reports.
	_ = pc.nc.SetDeadline(deadline)
	var stop func() bool
	if ctx.Done() != nil { // context.Background has none; skip the allocation
		nc := pc.nc
		stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(longAgo) })
	}
	resp, body, keep, early, err := pc.roundTrip(c.head, ticket, c.tail)
	if stop != nil && !stop() {
		keep = false // the deadline may be in the past now
	}
	// A 408 on a pooled conn is the server timing out the idle conn (some
	// send one before closing), not an answer to our request.
	stale408 := err == nil && pc.reused && resp.StatusCode == http.StatusRequestTimeout
	if err == nil && keep && !stale408 && ctx.Err() == nil {
		c.put(pc)
	} else {
		pc.nc.Close()
	}
	switch {
	case err != nil:
		retry = pc.reused && early && ctx.Err() == nil && connGone(err)
		return nil, nil, retry, interrupted(ctx, err)
	case stale408 && ctx.Err() == nil:
		return resp, body, true, nil
	}
	return resp, body, false, nil
}

// roundTrip writes the request and reads the answer. keep says the conn can
// take another request; early says the call failed before any byte of the
// answer arrived.
func (pc *conn) roundTrip(head, ticket, tail string) (resp *http.Response, body []byte, keep, early bool, err error) {
	pc.wbuf = append(append(append(pc.wbuf[:0], head...), ticket...), tail...)
	if _, err := pc.nc.Write(pc.wbuf); err != nil {
		return nil, nil, false, true, fmt.Errorf("write request: %w", err)
	}
	// Peek apart from ReadResponse, to tell "the conn was already closed"
	// (retryable) from "the answer broke off" (not).
	if _, err := pc.br.Peek(1); err != nil {
		return nil, nil, false, true, fmt.Errorf("read answer: %w", err)
	}
	for n := 0; ; n++ {
		if resp, err = http.ReadResponse(pc.br, nil); err != nil {
			return nil, nil, false, false, fmt.Errorf("read answer: %w", err)
		}
		// Interim answers (e.g. 103 Early Hints from a CDN) precede the
		// real one; 101 we never asked for, so it is an answer (a bad one).
		if code := resp.StatusCode; code >= 200 || code < 100 || code == http.StatusSwitchingProtocols || n == max1xx {
			break
		}
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, false, false, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxBody {
		// Not Close: it would read the rest of the body, however long.
		// The conn is dropped instead.
		return resp, body, false, false, nil
	}
	keep = resp.Body.Close() == nil && !resp.Close &&
		resp.StatusCode >= 200 && resp.StatusCode != http.StatusSwitchingProtocols &&
		pc.br.Buffered() == 0 // bytes nobody asked for: the conn is out of step
	return resp, body, keep, false, nil
}

func (c *client) dial(ctx context.Context, deadline time.Time) (*conn, error) {
	d := net.Dialer{Deadline: deadline}
	var nc net.Conn
	var err error
	if c.tls == nil {
		nc, err = d.DialContext(ctx, "tcp", c.addr)
	} else {
		td := tls.Dialer{NetDialer: &d, Config: c.tls}
		nc, err = td.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, interrupted(ctx, err)
	}
	return &conn{
		nc:   nc,
		br:   bufio.NewReader(nc),
		wbuf: make([]byte, 0, len(c.head)+2*MaxTicketBytes+len(c.tail)),
	}, nil
}

// takeIdle returns the most recently used idle conn, or nil.
func (c *client) takeIdle() *conn {
	now := time.Now()
	c.mu.Lock()
	n := len(c.idle)
	if n == 0 {
		c.mu.Unlock()
		return nil
	}
	pc := c.idle[n-1]
	c.idle[n-1] = nil
	c.idle = c.idle[:n-1]
	if now.Sub(pc.idleAt) <= c.maxIdleAge {
		c.mu.Unlock()
		pc.reused = true
		return pc
	}
	// The newest idle conn is too old, so all of them are.
	old := append([]*conn{pc}, c.idle...)
	clear(c.idle)
	c.idle = c.idle[:0]
	c.mu.Unlock()
	closeAll(old)
	return nil
}

func (c *client) put(pc *conn) {
	now := time.Now()
	pc.idleAt = now
	c.mu.Lock()
	// Conns are pushed in idleAt order, so the expired ones are at the
	// bottom, where a LIFO leaves them when the load drops.
	i := 0
	for i < len(c.idle) && now.Sub(c.idle[i].idleAt) > c.maxIdleAge {
		i++
	}
	var old []*conn
	if i > 0 {
		old = append(old, c.idle[:i]...)
		n := copy(c.idle, c.idle[i:])
		clear(c.idle[n:])
		c.idle = c.idle[:n]
	}
	if c.closed || len(c.idle) >= c.maxIdle {
		old = append(old, pc)
	} else {
		c.idle = append(c.idle, pc)
	}
	c.mu.Unlock()
	closeAll(old)
}

// close closes the idle conns and those returned from now on.
func (c *client) close() {
	c.mu.Lock()
	old := c.idle
	c.idle = nil
	c.closed = true
	c.mu.Unlock()
	closeAll(old)
}

func closeAll(cs []*conn) {
	for _, pc := range cs {
		pc.nc.Close()
	}
}

// connGone reports the errors of a conn the far end had closed.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// interrupted makes an error caused by the caller's cancellation or a
// deadline wrap context.Canceled or context.DeadlineExceeded, as
// net/http's did: I/O cut short by a deadline reports only
// os.ErrDeadlineExceeded.
func interrupted(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w: %w", cerr, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
