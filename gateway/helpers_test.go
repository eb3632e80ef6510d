package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// waitLong bounds every wait in these tests: generous, because a loaded
// 2-core machine under -race can stall for a long time, and waits end as
// soon as their condition holds.
const waitLong = 10 * time.Second

// fakeAuth accepts "good:<player>", answers "expired" with token_expired
// and anything else with invalid_token.
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, h protocol.Hello) (Identity, error) {
	switch {
	case strings.HasPrefix(h.Token, "good:"):
		return Identity{PlayerID: strings.TrimPrefix(h.Token, "good:"), HomeCell: "test-cell", ExpiresAt: time.Now().Add(time.Hour)}, nil
	case h.Token == "expired":
		return Identity{}, apierr.New(apierr.TokenExpired, "token expired")
	default:
		return Identity{}, apierr.Wrap("fakeAuth", apierr.InvalidToken, "invalid token", errors.New("signature mismatch"))
	}
}

// fakeResume issues distinguishable resume tokens and remembers them.
type fakeResume struct {
	mu     sync.Mutex
	issued []string
}

func (r *fakeResume) IssueResume(playerID, sessionID, cell string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tok := fmt.Sprintf("resume:%s:%s:%s:%d", playerID, sessionID, cell, len(r.issued))
	r.issued = append(r.issued, tok)
	return tok, nil
}

type harness struct {
	g      *Gateway
	reg    *prometheus.Registry
	resume *fakeResume
}

// startGateway runs a gateway on a loopback port for the test's lifetime.
func startGateway(t testing.TB, mutate func(*Config), handlers protocol.Handlers) *harness {
	t.Helper()
	// The suite runs on the platform's default engine; `make test` runs it
	// again with LIVECELL_TEST_GATEWAY_ENGINE=goroutine.
	cfg := Config{CellID: "test-cell", Listen: "127.0.0.1:0", Engine: os.Getenv("LIVECELL_TEST_GATEWAY_ENGINE")}
	if mutate != nil {
		mutate(&cfg)
	}
	h := &harness{reg: prometheus.NewRegistry(), resume: &fakeResume{}}
	g, err := New(cfg, Deps{Metrics: h.reg, Auth: fakeAuth{}, Resume: h.resume, Handlers: handlers})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.g = g
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return h
}

type client struct {
	t      testing.TB
	nc     net.Conn
	r      *protocol.Reader
	nextID uint32
}

func (h *harness) dial(t testing.TB) *client {
	t.Helper()
	return dialAddr(t, h.g.Addr().String())
}

func dialAddr(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: protocol.NewReader(nc, protocol.HardMaxFrame)}
}

func (c *client) id() uint32 {
	c.nextID++
	return c.nextID
}

func (c *client) write(f protocol.Frame) {
	c.t.Helper()
	c.writeRaw(protocol.Encode(f))
}

func (c *client) writeRaw(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads one frame and copies its payload out of the reader's buffer.
func (c *client) next() (protocol.Frame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(waitLong))
	f, err := c.r.Next()
	if err != nil {
		return f, err
	}
	f.Payload = append([]byte(nil), f.Payload...)
	return f, nil
}

func (c *client) read() protocol.Frame {
	c.t.Helper()
	f, err := c.next()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// request sends op with payload and returns the next frame.
func (c *client) request(op protocol.Opcode, payload string) (uint32, protocol.Frame) {
	c.t.Helper()
	id := c.id()
	c.write(protocol.Frame{Header: protocol.Header{Opcode: op, RequestID: id}, Payload: []byte(payload)})
	return id, c.read()
}

func helloPayload(token string) string {
	b, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Token: token, Client: "test"})
	return string(b)
}

// hello authenticates as token's player and returns the Welcome.
func (c *client) hello(token string) protocol.Welcome {
	c.t.Helper()
	id, f := c.request(protocol.OpHello, helloPayload(token))
	if f.Opcode != protocol.OpHello || !f.IsResponse() || f.RequestID != id {
		c.t.Fatalf("hello answer: got opcode %v flags %b id %d (%s), want hello response to %d", f.Opcode, f.Flags, f.RequestID, f.Payload, id)
	}
	var w protocol.Welcome
	if err := json.Unmarshal(f.Payload, &w); err != nil {
		c.t.Fatalf("decode welcome: %v", err)
	}
	return w
}

// ping checks the session still answers.
func (c *client) ping() {
	c.t.Helper()
	id, f := c.request(protocol.OpPing, `"alive?"`)
	if f.Opcode != protocol.OpPing || !f.IsResponse() || f.RequestID != id || string(f.Payload) != `"alive?"` {
		c.t.Fatalf("ping answer: got opcode %v id %d payload %s, want ping response %d", f.Opcode, f.RequestID, f.Payload, id)
	}
}

// wantError checks f is an error frame with code for request id.
func wantError(t testing.TB, f protocol.Frame, code apierr.Code, id uint32) protocol.ErrorBody {
	t.Helper()
	if f.Opcode != protocol.OpError {
		t.Fatalf("got opcode %v (%s), want error %s", f.Opcode, f.Payload, code)
	}
	var body protocol.ErrorBody
	if err := json.Unmarshal(f.Payload, &body); err != nil {
		t.Fatalf("decode error body %q: %v", f.Payload, err)
	}
	if body.Code != string(code) || f.RequestID != id {
		t.Fatalf("got error %q for request %d (%s), want %q for %d", body.Code, f.RequestID, body.Message, code, id)
	}
	if f.IsResponse() != (id != 0) {
		t.Errorf("got response flag %v on an error for request %d, want it set exactly when answering a request", f.IsResponse(), id)
	}
	if body.Retryable != code.Retryable() {
		t.Errorf("got retryable %v for %s, want %v", body.Retryable, code, code.Retryable())
	}
	return body
}

// wantClosed reads until the server closes the connection; no frame may
// arrive first.
func (c *client) wantClosed() {
	c.t.Helper()
	f, err := c.next()
	if err == nil {
		c.t.Fatalf("got frame %v %s, want the connection closed", f.Opcode, f.Payload)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("got read error %v, want EOF", err)
	}
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// histogramCount is the number of observations of a histogram series.
func histogramCount(t testing.TB, reg *prometheus.Registry, name, opcode string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "opcode" && lp.GetValue() == opcode {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
