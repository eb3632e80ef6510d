package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// fakeEdges admits edges whose credential is "edge:<name>".
type fakeEdges struct{}

func (fakeEdges) AuthenticateEdge(_ context.Context, tok string) (string, error) {
	if name, ok := strings.CutPrefix(tok, "edge:"); ok {
		return name, nil
	}
	return "", apierr.New(apierr.InvalidToken, "bad signature")
}

// startBackboneGateway runs a gateway with a backbone listener, stopped by
// the caller or at the end of the test.
func startBackboneGateway(t *testing.T, handlers protocol.Handlers) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), resume: &fakeResume{}}
	g, err := New(Config{CellID: "test-cell", Listen: "127.0.0.1:0", BackboneListen: "127.0.0.1:0", DrainGrace: time.Second},
		Deps{Metrics: h.reg, Auth: fakeAuth{}, Resume: h.resume, Handlers: handlers, Edges: fakeEdges{}})
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
		_ = g.Stop(ctx)
	})
	return h
}

func dialBackbone(t *testing.T, h *harness) *backbone.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := backbone.Dial(ctx, h.g.BackboneAddr().String(), backbone.ClientConfig{Edge: "e1", Token: "edge:e1"})
	if err != nil {
		t.Fatalf("backbone.Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// streamConn presents one backbone session as a net.Conn for the test
// client: what the gateway sends is copied into a pipe the test reads.
type streamConn struct {
	net.Conn          // the test's end of the pipe
	peer     net.Conn // the end fed by the handler
	st       *backbone.ClientStream
	in       chan []byte // copies of Data, in order
	closed   chan bool   // Closed's lost
	once     sync.Once
}

func (s *streamConn) Data(b []byte) { s.in <- append([]byte(nil), b...) }

func (s *streamConn) Closed(lost bool) {
	s.closed <- lost
	s.once.Do(func() { close(s.in) })
}

func (s *streamConn) Write(p []byte) (int, error) {
	if err := s.st.Send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func openSession(t *testing.T, c *backbone.Client) (*client, *streamConn) {
	t.Helper()
	mine, peer := net.Pipe()
	sc := &streamConn{Conn: mine, peer: peer, in: make(chan []byte, 1024), closed: make(chan bool, 1)}
	st, err := c.Open(backbone.Open{Remote: "203.0.113.9:6000", Transport: "tcp"}, sc)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	sc.st = st
	go func() {
		for b := range sc.in {
			if _, err := peer.Write(b); err != nil {
				return
			}
		}
		peer.Close()
	}()
	t.Cleanup(func() { mine.Close(); st.Close("") })
	return &client{t: t, nc: sc, r: protocol.NewReader(sc, protocol.HardMaxFrame)}, sc
}

func TestBackboneSessionIsAGatewaySession(t *testing.T) {
	h := startBackboneGateway(t, nil)
	c := dialBackbone(t, h)
	if w := c.Welcome(); w.Cell != "test-cell" || w.Window < protocol.DefaultMaxFrame {
		t.Fatalf("link Welcome: got %+v", w)
	}

	// Nothing before Hello, exactly as over TCP.
	cl, _ := openSession(t, c)
	id, f := cl.request(protocol.OpEcho, "x")
	wantError(t, f, apierr.NotAuthenticated, id)
	cl.wantClosed()

	cl, _ = openSession(t, c)
	w := cl.hello("good:p-edge")
	if w.PlayerID != "p-edge" || w.Cell != "test-cell" || w.ResumeToken == "" {
		t.Fatalf("Welcome over the backbone: got %+v", w)
	}
	if id, f := cl.request(protocol.OpEcho, "through the edge"); f.RequestID != id || string(f.Payload) != "through the edge" {
		t.Fatalf("echo: got %d %q", f.RequestID, f.Payload)
	}
	// Pushes find the player on its backbone session.
	eventually(t, "the session to be indexed", func() bool { return h.g.Sessions() == 1 })
	if n, err := h.g.Push(context.Background(), "p-edge", protocol.Push{Topic: "test.hello"}); err != nil || n != 1 {
		t.Fatalf("Push: %d, %v", n, err)
	}
	if f := cl.read(); f.Opcode != protocol.OpPush || !strings.Contains(string(f.Payload), "test.hello") {
		t.Fatalf("push: got %v %s", f.Opcode, f.Payload)
	}
	// A fresh resume token on request.
	id, f = cl.request(protocol.OpResume, "")
	var g protocol.ResumeGrant
	if f.Opcode != protocol.OpResume || !f.IsResponse() || f.RequestID != id || json.Unmarshal(f.Payload, &g) != nil || g.ResumeToken == "" || g.ResumeToken == w.ResumeToken {
		t.Fatalf("resume: got %v %s, want a new token", f.Opcode, f.Payload)
	}
}

func TestBackboneRefusesBadEdgeCredential(t *testing.T) {
	h := startBackboneGateway(t, nil)
	_, err := backbone.Dial(context.Background(), h.g.BackboneAddr().String(), backbone.ClientConfig{Token: "player-token"})
	if apierr.CodeOf(err) != apierr.InvalidToken {
		t.Fatalf("link with a bad credential: got %v, want invalid_token", err)
	}
}

func TestDrainTellsEdgesAndTheirSessions(t *testing.T) {
	h := startBackboneGateway(t, nil)
	c := dialBackbone(t, h)
	cl, _ := openSession(t, c)
	cl.hello("good:p-drain")
	done := make(chan error, 1)
	go func() { done <- h.g.Drain(context.Background(), protocol.Reconnect{Reason: "draining", Cell: "other"}) }()
	f := cl.read()
	var r protocol.Reconnect
	if f.Opcode != protocol.OpReconnect || json.Unmarshal(f.Payload, &r) != nil || r.Cell != "other" || r.ResumeToken == "" {
		t.Fatalf("drain: got %v %s, want a reconnect with a resume token", f.Opcode, f.Payload)
	}
	eventually(t, "GOAWAY on the link", func() bool { return c.GoAway() == "draining" })
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

func TestStopEndsEdgeSessionsAndLinks(t *testing.T) {
	h := startBackboneGateway(t, nil)
	c := dialBackbone(t, h)
	cl, sc := openSession(t, c)
	cl.hello("good:p-stop")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- h.g.Stop(ctx) }()
	f := cl.read()
	var b protocol.Bye
	if f.Opcode != protocol.OpBye || json.Unmarshal(f.Payload, &b) != nil || b.Reason != "shutting_down" {
		t.Fatalf("stop: got %v %s, want bye shutting_down", f.Opcode, f.Payload)
	}
	if _, err := cl.next(); err != io.EOF {
		t.Errorf("after bye: got %v, want EOF", err)
	}
	select {
	case lost := <-sc.closed:
		if lost {
			t.Error("the gateway's orderly close was reported as a lost link")
		}
	case <-time.After(waitLong):
		t.Fatal("the session was never closed")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the link outlived the gateway")
	}
}

func TestResumeOpcode(t *testing.T) {
	h := startGateway(t, nil, nil)
	cl := h.dial(t)
	w := cl.hello("good:p-r")
	id, f := cl.request(protocol.OpResume, "{}")
	var g protocol.ResumeGrant
	if f.Opcode != protocol.OpResume || f.RequestID != id || json.Unmarshal(f.Payload, &g) != nil || !strings.HasPrefix(g.ResumeToken, "resume:p-r:"+w.SessionID+":") {
		t.Fatalf("resume: got %v %d %s", f.Opcode, f.RequestID, f.Payload)
	}

	// Without an issuer there is nothing to renew.
	g2, err := New(Config{CellID: "c", Listen: "127.0.0.1:0"}, Deps{Auth: fakeAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer g2.Stop(context.Background())
	cl = dialAddr(t, g2.Addr().String())
	cl.hello("good:p-r")
	id, f = cl.request(protocol.OpResume, "")
	wantError(t, f, apierr.UnknownOpcode, id)
	cl.ping()
}
