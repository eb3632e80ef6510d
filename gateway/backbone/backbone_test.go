package backbone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
)

const waitLong = 10 * time.Second

type fakeAuth struct{}

func (fakeAuth) AuthenticateEdge(_ context.Context, tok string) (string, error) {
	if name, ok := strings.CutPrefix(tok, "edge:"); ok {
		return name, nil
	}
	return "", apierr.New(apierr.InvalidToken, "bad signature")
}

// server runs a Server whose sessions are handled by serve (in a goroutine
// of their own), and returns its address.
func server(t *testing.T, cfg ServerConfig, serve func(net.Conn)) (*Server, string) {
	t.Helper()
	if cfg.Cell == "" {
		cfg.Cell = "test-cell"
	}
	s, err := NewServer(cfg, ServerDeps{Auth: fakeAuth{}, Accept: func(c net.Conn) { go serve(c) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string, cfg ClientConfig) *Client {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = "edge:e1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo copies a session's input back to it, then closes its side.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.(*Stream).CloseWrite()
	_ = c.Close()
}

// recorder is a Handler that collects what the gateway sent.
type recorder struct {
	mu     sync.Mutex
	data   bytes.Buffer
	closed chan bool // receives lost, once
}

func newRecorder() *recorder { return &recorder{closed: make(chan bool, 1)} }

func (r *recorder) Data(b []byte) {
	r.mu.Lock()
	r.data.Write(b)
	r.mu.Unlock()
}

func (r *recorder) Closed(lost bool) { r.closed <- lost }

func (r *recorder) waitData(t *testing.T, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if r.data.Len() >= n {
			b := bytes.Clone(r.data.Bytes())
			r.mu.Unlock()
			return b
		}
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("waited for %d bytes, have %d", n, r.data.Len())
	return nil
}

func (r *recorder) waitClosed(t *testing.T) bool {
	t.Helper()
	select {
	case lost := <-r.closed:
		return lost
	case <-time.After(waitLong):
		t.Fatal("the session never closed")
		return false
	}
}

func TestHandshake(t *testing.T) {
	_, addr := server(t, ServerConfig{Cell: "eu-west", MaxFrame: 4096, IdleTimeout: 9 * time.Second}, echo)
	c := dial(t, addr, ClientConfig{Edge: "e1"})
	if w := c.Welcome(); w.Cell != "eu-west" || w.MaxFrame != 4096 || w.IdleTimeoutMS != 9000 {
		t.Errorf("Welcome: got %+v", w)
	}
	if !c.Usable() {
		t.Error("a fresh link is not usable")
	}

	_, err := Dial(context.Background(), addr, ClientConfig{Token: "forged"})
	if apierr.CodeOf(err) != apierr.InvalidToken {
		t.Fatalf("Dial with a bad credential: got %v, want invalid_token", err)
	}

	// Anything but a Hello first is refused, and nothing is served.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(Append(nil, Message{Kind: KindOpen, Session: 1, Body: []byte(`{}`)})); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(waitLong))
	m, err := NewReader(nc).Next()
	if err != nil || m.Kind != KindError || !strings.Contains(string(m.Body), "not_authenticated") {
		t.Fatalf("open before hello: got %v %q, %v; want an error not_authenticated", m.Kind, m.Body, err)
	}
}

func TestSessionRoundTripAndClose(t *testing.T) {
	_, addr := server(t, ServerConfig{}, echo)
	c := dial(t, addr, ClientConfig{})
	recs := make([]*recorder, 3)
	streams := make([]*ClientStream, 3)
	for i := range recs {
		recs[i] = newRecorder()
		s, err := c.Open(Open{Remote: "192.0.2.1:5000", Transport: "tcp"}, recs[i])
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = s
	}
	// Interleaved sessions stay apart, and a write larger than MaxData is
	// split and reassembled in order.
	big := bytes.Repeat([]byte("0123456789abcdef"), (MaxData+MaxData/2)/16)
	for i, s := range streams {
		if err := s.Send([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := streams[1].Send(big); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		want := []byte{byte('a' + i)}
		if i == 1 {
			want = append(want, big...)
		}
		if got := r.waitData(t, len(want)); !bytes.Equal(got, want) {
			t.Errorf("session %d: got %d bytes, want %d (equal %v)", i, len(got), len(want), bytes.Equal(got[:min(len(got), 1)], want[:1]))
		}
	}
	// The edge closes a session: the gateway sees EOF and closes its side.
	streams[0].Close("player left")
	select {
	case <-recs[0].closed:
		t.Error("Closed was called after the edge closed the session itself")
	case <-time.After(50 * time.Millisecond):
	}
	if got := c.Sessions(); got != 2 {
		t.Errorf("Sessions after one Close: got %d, want 2", got)
	}
}

func TestGatewayClosesSession(t *testing.T) {
	_, addr := server(t, ServerConfig{}, func(c net.Conn) {
		_, _ = c.Write([]byte("bye"))
		_ = c.Close()
	})
	c := dial(t, addr, ClientConfig{})
	r := newRecorder()
	if _, err := c.Open(Open{}, r); err != nil {
		t.Fatal(err)
	}
	if lost := r.waitClosed(t); lost {
		t.Error("a session the gateway closed was reported lost")
	}
	if got := r.waitData(t, 3); string(got) != "bye" {
		t.Errorf("data before the close: got %q", got)
	}
}

func TestStreamSeesRemoteAddrAndDeadlines(t *testing.T) {
	got := make(chan error, 1)
	var remote string
	_, addr := server(t, ServerConfig{}, func(c net.Conn) {
		remote = c.RemoteAddr().String()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_, err := c.Read(make([]byte, 8))
		got <- err
		_ = c.Close()
	})
	c := dial(t, addr, ClientConfig{})
	r := newRecorder()
	if _, err := c.Open(Open{Remote: "198.51.100.7:4242"}, r); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past its deadline: got %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(waitLong):
		t.Fatal("the read deadline never fired")
	}
	if remote != "198.51.100.7:4242" {
		t.Errorf("RemoteAddr: got %q, want the player's address from Open", remote)
	}
	r.waitClosed(t)
}

func TestLinkLossEndsEverySession(t *testing.T) {
	accepted := make(chan net.Conn, 2)
	s, addr := server(t, ServerConfig{}, func(c net.Conn) { accepted <- c })
	c := dial(t, addr, ClientConfig{})
	r1, r2 := newRecorder(), newRecorder()
	for _, r := range []*recorder{r1, r2} {
		if _, err := c.Open(Open{}, r); err != nil {
			t.Fatal(err)
		}
	}
	gw := []net.Conn{<-accepted, <-accepted}
	// The gateway's process dies: its side of the link is cut.
	s.mu.Lock()
	for sl := range s.links {
		_ = sl.l.nc.Close()
	}
	s.mu.Unlock()
	for _, r := range []*recorder{r1, r2} {
		if lost := r.waitClosed(t); !lost {
			t.Error("a session of a failed link was not reported lost")
		}
	}
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not notice its link failed")
	}
	if c.Usable() {
		t.Error("a failed link is still usable")
	}
	for _, st := range gw {
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrLinkLost) {
			t.Errorf("gateway read on a lost link: got %v, want ErrLinkLost", err)
		}
		_ = st.Close()
	}
	if _, err := c.Open(Open{}, newRecorder()); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Open on a failed link: got %v, want unavailable", err)
	}
}

func TestSilentGatewayIsDeclaredDead(t *testing.T) {
	// A gateway that completes the handshake, then never answers again:
	// a host gone without a reset.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := NewReader(nc).Next(); err != nil {
			return
		}
		w, _ := json.Marshal(Welcome{Cell: "x"})
		_, _ = nc.Write(Append(nil, Message{Kind: KindWelcome, Body: w}))
		_, _ = io.Copy(io.Discard, nc)
	}()
	c := dial(t, ln.Addr().String(), ClientConfig{Keepalive: 20 * time.Millisecond, DeadAfter: 100 * time.Millisecond})
	start := time.Now()
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("a silent link was never declared dead")
	}
	if !errors.Is(c.Err(), ErrLinkLost) {
		t.Errorf("Err: got %v, want ErrLinkLost", c.Err())
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("declared dead after %v, before DeadAfter", d)
	}
}

func TestGoAway(t *testing.T) {
	s, addr := server(t, ServerConfig{}, echo)
	c := dial(t, addr, ClientConfig{})
	r := newRecorder()
	st, err := c.Open(Open{}, r)
	if err != nil {
		t.Fatal(err)
	}
	s.GoAway("draining")
	deadline := time.Now().Add(waitLong)
	for c.GoAway() == "" && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c.GoAway() != "draining" || c.Usable() {
		t.Fatalf("after GoAway: reason %q usable %v", c.GoAway(), c.Usable())
	}
	if _, err := c.Open(Open{}, newRecorder()); apierr.CodeOf(err) != apierr.Draining {
		t.Errorf("Open after GoAway: got %v, want draining", err)
	}
	// Sessions already open keep working.
	if err := st.Send([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := r.waitData(t, 10); string(got) != "still here" {
		t.Errorf("echo after GoAway: got %q", got)
	}
	// The listener is closed: no new link.
	if _, err := Dial(context.Background(), addr, ClientConfig{Token: "edge:e2"}); err == nil {
		t.Error("a link was accepted after GoAway")
	}
}

// firstStuck serves the first session by never reading it, and echoes the
// others.
func firstStuck(stuck chan net.Conn) func(net.Conn) {
	var once sync.Once
	return func(c net.Conn) {
		first := false
		once.Do(func() { first = true })
		if first {
			stuck <- c
			return
		}
		echo(c)
	}
}

func TestCreditHoldsBackASessionTheGatewayDoesNotRead(t *testing.T) {
	stuck := make(chan net.Conn, 1)
	_, addr := server(t, ServerConfig{MaxFrame: 1024, Window: 4096}, firstStuck(stuck))
	c := dial(t, addr, ClientConfig{WriteTimeout: 100 * time.Millisecond})
	if c.Welcome().Window != 4096 {
		t.Fatalf("Welcome.Window: got %d, want 4096", c.Welcome().Window)
	}
	slow, fast := newRecorder(), newRecorder()
	st, err := c.Open(Open{}, slow)
	if err != nil {
		t.Fatal(err)
	}
	gw := <-stuck
	ok, err := c.Open(Open{}, fast)
	if err != nil {
		t.Fatal(err)
	}
	// More than the credit: Send waits, then gives up; nothing is reset.
	if err := st.Send(make([]byte, 5000)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Send beyond the credit to a session nobody reads: got %v, want a deadline error", err)
	}
	// The other session on the same link is not held up.
	if err := ok.Send([]byte("fine")); err != nil {
		t.Fatal(err)
	}
	if got := fast.waitData(t, 4); string(got) != "fine" {
		t.Errorf("the other session: got %q", got)
	}
	// Once the gateway reads, credit comes back and Send goes through.
	go func() { _, _ = io.Copy(io.Discard, gw) }()
	if err := st.Send(make([]byte, 5000)); err != nil {
		t.Fatalf("Send after the gateway read: %v", err)
	}
}

func TestEdgeIgnoringCreditIsReset(t *testing.T) {
	stuck := make(chan net.Conn, 1)
	_, addr := server(t, ServerConfig{MaxFrame: 1024, Window: 4096}, firstStuck(stuck))
	c := dial(t, addr, ClientConfig{})
	slow, fast := newRecorder(), newRecorder()
	st, err := c.Open(Open{}, slow)
	if err != nil {
		t.Fatal(err)
	}
	gw := <-stuck
	ok, err := c.Open(Open{}, fast)
	if err != nil {
		t.Fatal(err)
	}
	// A broken edge: DATA past the credit, straight onto the link.
	if _, err := c.l.sendData(st.ID(), make([]byte, 5000), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if lost := slow.waitClosed(t); lost {
		t.Error("the session over its credit was reported lost; want closed by the gateway")
	}
	if _, err := io.ReadAll(gw); !errors.Is(err, errOverflow) {
		t.Errorf("gateway read of the reset session: got %v, want errOverflow", err)
	}
	_ = gw.Close()
	if err := ok.Send([]byte("fine")); err != nil {
		t.Fatal(err)
	}
	if got := fast.waitData(t, 4); string(got) != "fine" {
		t.Errorf("the other session: got %q", got)
	}
}
