package edge_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/edge"
	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

var transports = []string{edge.TransportTCP, edge.TransportQUIC, edge.TransportWS}

func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestSessionsRoundTripOverEveryTransport(t *testing.T) {
	r := newRig(t, rigOptions{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			player := "p-" + tr
			c := r.dial(tr, r.player(player, "b"))
			if w := c.Welcome(); w.Cell != "b" || w.PlayerID != player || w.ResumeToken == "" {
				t.Fatalf("Welcome through the edge: got %+v", w)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			// Pipelined requests, one large: every answer comes back to
			// the id the player chose.
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					payload := []byte(fmt.Sprintf(`"%d-%s"`, i, strings.Repeat("x", i*1000)))
					got, err := c.Request(ctx, protocol.OpEcho, payload)
					if err != nil || string(got) != string(payload) {
						t.Errorf("echo %d: got %d bytes, %v", i, len(got), err)
					}
				})
			}
			wg.Wait()
			if got := where(t, c); got != "b" {
				t.Errorf("served by %q, want b", got)
			}
			// A push reaches the player through the edge.
			eventually(t, "the session at the gateway", func() bool { return r.cell["b"].gw.Sessions() > 0 })
			if n, err := r.cell["b"].gw.Push(ctx, player, protocol.Push{Topic: "test.pushed", ID: tr}); err != nil || n != 1 {
				t.Fatalf("Push: %d, %v", n, err)
			}
			select {
			case p := <-c.Pushes():
				if p.Topic != "test.pushed" || p.ID != tr {
					t.Errorf("push: got %+v", p)
				}
			case <-time.After(waitLong):
				t.Fatal("no push")
			}
			if got := metric(t, r.reg, "livecell_edge_sessions", "transport", tr); got != 1 {
				t.Errorf("sessions{%s}: got %v, want 1", tr, got)
			}
			c.Close()
			eventually(t, "the session to leave the gateway", func() bool { return r.cell["b"].gw.Sessions() == 0 })
		})
	}
}

// recordingBackbone stands in for a cell's gateway and records every
// session an edge opens on it.
type recordingBackbone struct {
	mu     sync.Mutex
	opened int
	bytes  int
}

func (rb *recordingBackbone) start(t *testing.T) string {
	t.Helper()
	s, err := backbone.NewServer(backbone.ServerConfig{Cell: "a"}, backbone.ServerDeps{
		Auth: edgeAuthAny{},
		Accept: func(c net.Conn) {
			rb.mu.Lock()
			rb.opened++
			rb.mu.Unlock()
			go func() {
				n, _ := io.Copy(io.Discard, c)
				rb.mu.Lock()
				rb.bytes += int(n)
				rb.mu.Unlock()
				c.Close()
			}()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return ln.Addr().String()
}

type edgeAuthAny struct{}

func (edgeAuthAny) AuthenticateEdge(context.Context, string) (string, error) { return "e", nil }

func TestNothingIsRelayedBeforeTheHelloVerifies(t *testing.T) {
	rb := &recordingBackbone{}
	addr := rb.start(t)
	r := newRig(t, rigOptions{
		backbones: map[string]string{"a": addr},
		// The recording backbone never answers a Hello: the verified
		// player's session times out there and lands on b.
		edgeCfg: func(c *edge.Config) { c.AuthTimeout, c.HelloTimeout = 200*time.Millisecond, 300*time.Millisecond },
	})
	serverTok, _, err := r.signer.IssueServer("ds", []string{"ops"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Expired beyond the verifier's clock-skew leeway.
	past, err := token.NewSigner(r.keys, func() time.Time { return time.Now().Add(-10 * time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.IssuePlayer("p-old", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hello := func(tok string) []byte {
		p, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Token: tok})
		return protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: 1}, Payload: p})
	}
	echo := protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, RequestID: 1}, Payload: []byte("leak?")})
	for _, tt := range []struct {
		name  string
		input []byte
		code  apierr.Code
		id    uint32
	}{
		{"a request before hello", append(echo, hello(r.player("p1", "a"))...), apierr.NotAuthenticated, 1},
		{"a forged token", hello(r.player("p2", "a") + "x"), apierr.InvalidToken, 1},
		{"a server token", hello(serverTok), apierr.InvalidToken, 1},
		{"no token", hello(""), apierr.Unauthenticated, 1},
		{"garbage framing", []byte{0, 0, 0, 1, 9, 9, 9, 9}, apierr.BadFrame, 0},
		{"silence", nil, apierr.AuthTimeout, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, tr := range transports {
				nc, err := r.rawDial(context.Background(), tr)
				if err != nil {
					t.Fatal(err)
				}
				if tt.input != nil {
					if _, err := nc.Write(tt.input); err != nil {
						t.Fatal(err)
					}
				}
				if tr == edge.TransportQUIC && tt.input == nil {
					// No stream exists until the client sends: the edge
					// closes the connection without a frame.
					if _, err := protocol.NewReader(nc, 0).Next(); err == nil {
						t.Errorf("quic: a frame for a client that never sent")
					}
					nc.Close()
					continue
				}
				code, id := readError(t, nc)
				if code != tt.code || id != tt.id {
					t.Errorf("%s: got %s for request %d, want %s for %d", tr, code, id, tt.code, tt.id)
				}
				nc.Close()
			}
		})
	}
	// A token that verified but expired gets token_expired, like the gateway.
	nc, err := r.rawDial(context.Background(), edge.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(hello(expired)); err != nil {
		t.Fatal(err)
	}
	if code, _ := readError(t, nc); code != apierr.TokenExpired {
		t.Errorf("expired token: got %s, want token_expired", code)
	}
	nc.Close()

	// Not one session reached the backbone, and the edge counted every refusal.
	rb.mu.Lock()
	opened := rb.opened
	rb.mu.Unlock()
	if opened != 0 {
		t.Fatalf("the edge opened %d backbone sessions for players that never authenticated", opened)
	}
	if got := metric(t, r.reg, "livecell_edge_auth_failures_total", "code", "not_authenticated"); got != 3 {
		t.Errorf("auth_failures_total{not_authenticated}: got %v, want 3", got)
	}
	// The same edge relays a player whose token verifies: its session is
	// opened on cell a's (recording) backbone first.
	r.dial(edge.TransportTCP, r.player("p-ok", "a"))
	eventually(t, "the verified player's session on the backbone", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.opened == 1
	})
}

// readError reads frames until an error frame and returns its code and
// request id; the connection must then close.
func readError(t *testing.T, nc net.Conn) (apierr.Code, uint32) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(waitLong))
	rd := protocol.NewReader(nc, protocol.HardMaxFrame)
	for {
		f, err := rd.Next()
		if err != nil {
			t.Fatalf("read: %v, want an error frame", err)
		}
		if f.Opcode != protocol.OpError {
			continue
		}
		var eb protocol.ErrorBody
		if err := json.Unmarshal(f.Payload, &eb); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Next(); err == nil {
			t.Errorf("a frame after error %s, want the connection closed", eb.Code)
		}
		return apierr.Code(eb.Code), f.RequestID
	}
}

func TestWebSocketRefusesTextAndMultiFrameMessages(t *testing.T) {
	r := newRig(t, rigOptions{})
	url := "ws://" + r.edge.Addrs()[edge.TransportWS] + transport.WSPath
	hello, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Token: r.player("p-ws", "a")})
	helloFrame := protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: 1}, Payload: hello})
	ping := protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPing, RequestID: 2}})
	for _, tt := range []struct {
		name string
		send func(ws *websocket.Conn) error
		id   uint32
	}{
		{"text hello", func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, helloFrame) }, 0},
		{"two frames in one message", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, append(append([]byte(nil), helloFrame...), ping...))
		}, 0},
		{"half a frame", func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.BinaryMessage, helloFrame[:10]) }, 0},
		{"text after authenticating", func(ws *websocket.Conn) error {
			if err := ws.WriteMessage(websocket.BinaryMessage, helloFrame); err != nil {
				return err
			}
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping"}`))
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if err := tt.send(ws); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitLong))
			for {
				mt, msg, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("read: %v, want a bad_frame error message", err)
				}
				if mt != websocket.BinaryMessage || len(msg) < protocol.HeaderSize || protocol.LengthSize+int(binary.BigEndian.Uint32(msg)) != len(msg) {
					t.Fatalf("got a %d message of %d bytes, want one frame per binary message", mt, len(msg))
				}
				f, _, err := protocol.Parse(msg, protocol.HardMaxFrame)
				if err != nil {
					t.Fatal(err)
				}
				if f.Opcode != protocol.OpError {
					continue // the Welcome
				}
				var eb protocol.ErrorBody
				_ = json.Unmarshal(f.Payload, &eb)
				if eb.Code != string(apierr.BadFrame) || f.RequestID != tt.id {
					t.Fatalf("got %s for %d (%s), want bad_frame", eb.Code, f.RequestID, eb.Message)
				}
				break
			}
			if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("after the error: got %v, want a normal close", err)
			}
		})
	}
}

func TestFailoverKeepsThePlayerConnected(t *testing.T) {
	r := newRig(t, rigOptions{})
	type player struct {
		tr   string
		conn *gameclient.Conn
	}
	var victims []player
	for _, tr := range transports {
		victims = append(victims, player{tr, r.dial(tr, r.player("pa-"+tr, "a"))})
	}
	bystander := r.dial(edge.TransportTCP, r.player("pb", "b"))
	for _, p := range victims {
		if got := where(t, p.conn); got != "a" {
			t.Fatalf("%s player served by %q before the failure, want a", p.tr, got)
		}
	}
	// One request per player is in flight on a when it dies.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	inflight := make(chan error, len(victims))
	for _, p := range victims {
		go func() { _, err := p.conn.Request(ctx, opSlow, nil); inflight <- err }()
	}
	for range victims {
		select {
		case <-r.cell["a"].slowIn:
		case <-time.After(waitLong):
			t.Fatal("the slow requests never reached cell a")
		}
	}

	r.cell["a"].proxy.Cut() // cell a is gone, as seen from the edge

	for range victims {
		err := <-inflight
		if apierr.CodeOf(err) != apierr.SessionMoved {
			t.Errorf("in-flight request: got %v, want session_moved", err)
		}
		if e, ok := apierr.From(err); !ok || !e.Code.Retryable() {
			t.Errorf("in-flight request error %v is not retryable", err)
		}
	}
	for _, p := range victims {
		select {
		case push := <-p.conn.Pushes():
			var m protocol.SessionMoved
			if push.Topic != protocol.TopicSessionMoved || json.Unmarshal(push.Data, &m) != nil || m.Cell != "b" || m.FromCell != "a" || m.Reason != "failover" || m.ResumeToken == "" {
				t.Errorf("%s: push %s %s, want session.moved from a to b", p.tr, push.Topic, push.Data)
			}
		case <-time.After(waitLong):
			t.Fatalf("%s: no session.moved push", p.tr)
		}
		select {
		case <-p.conn.Done():
			t.Fatalf("%s: the player's connection closed: %v", p.tr, p.conn.Err())
		default:
		}
		if got := where(t, p.conn); got != "b" {
			t.Errorf("%s: served by %q after the failover, want b", p.tr, got)
		}
		if _, err := p.conn.Ping(ctx); err != nil {
			t.Errorf("%s: ping after the failover: %v", p.tr, err)
		}
	}
	// The player on b noticed nothing.
	select {
	case push := <-bystander.Pushes():
		t.Errorf("the player on b got a push: %+v", push)
	default:
	}
	if got := where(t, bystander); got != "b" {
		t.Errorf("bystander served by %q", got)
	}
	if got := metric(t, r.reg, "livecell_edge_reattaches_total", "reason", "failover", "result", "ok"); got != float64(len(victims)) {
		t.Errorf("reattaches_total{failover,ok}: got %v, want %d", got, len(victims))
	}
	if got := metric(t, r.reg, "livecell_edge_interrupted_requests_total"); got != float64(len(victims)) {
		t.Errorf("interrupted_requests_total: got %v, want %d", got, len(victims))
	}
	// New players homed to a land on b straight away.
	late := r.dial(edge.TransportTCP, r.player("pa-late", "a"))
	if w := late.Welcome(); w.Cell != "b" {
		t.Errorf("a new player of the dead cell: welcomed by %q, want b", w.Cell)
	}
}

func TestGatewayReconnectMovesTheSession(t *testing.T) {
	r := newRig(t, rigOptions{})
	c := r.dial(edge.TransportQUIC, r.player("p-drain", "a"))
	drained := make(chan error, 1)
	go func() {
		drained <- r.cell["a"].gw.Drain(context.Background(), protocol.Reconnect{Reason: "draining", Cell: "a", RetryAfterMS: 100})
	}()
	select {
	case push := <-c.Pushes():
		var m protocol.SessionMoved
		if push.Topic != protocol.TopicSessionMoved || json.Unmarshal(push.Data, &m) != nil || m.Cell != "b" || m.Reason != "draining" {
			t.Fatalf("push %s %s, want session.moved to b for draining", push.Topic, push.Data)
		}
	case <-time.After(waitLong):
		t.Fatal("no session.moved push")
	}
	select {
	case rc := <-c.Reconnects():
		t.Errorf("the gateway's Reconnect reached the player: %+v", rc)
	default:
	}
	if got := where(t, c); got != "b" {
		t.Errorf("served by %q after the drain, want b", got)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	select {
	case <-c.Done():
		t.Fatalf("the player's connection closed: %v", c.Err())
	default:
	}
}

func TestResumeTokenIsRenewedAndUsed(t *testing.T) {
	// Resume tokens that live 2 s: without renewal, the failover after
	// 2.5 s would be refused.
	r := newRig(t, rigOptions{resumeTTL: 2 * time.Second})
	c := r.dial(edge.TransportTCP, r.player("p-long", "a"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := metric(t, r.reg, "livecell_edge_resume_renewals_total", "result", "ok"); got < 1 {
		t.Fatalf("resume_renewals_total{ok}: got %v, want at least 1", got)
	}
	r.cell["a"].proxy.Cut()
	select {
	case push := <-c.Pushes():
		if push.Topic != protocol.TopicSessionMoved {
			t.Fatalf("push %s, want session.moved", push.Topic)
		}
	case <-time.After(waitLong):
		t.Fatalf("no session.moved push; connection: %v", c.Err())
	}
	if got := where(t, c); got != "b" {
		t.Errorf("served by %q, want b", got)
	}
}

func TestNoCellLeftTellsThePlayerToReconnect(t *testing.T) {
	r := newRig(t, rigOptions{edgeCfg: func(c *edge.Config) { c.AttachTimeout = 300 * time.Millisecond }})
	c := r.dial(edge.TransportTCP, r.player("p-alone", "a"))
	r.cell["a"].proxy.Cut()
	r.cell["b"].proxy.Cut()
	select {
	case rc := <-c.Reconnects():
		if rc.ResumeToken == "" {
			t.Errorf("Reconnect without the resume token: %+v", rc)
		}
	case <-time.After(waitLong):
		t.Fatal("no Reconnect")
	}
	select {
	case <-c.Done():
		if apierr.CodeOf(c.Err()) != apierr.NoHealthyCell {
			t.Errorf("connection ended with %v, want no_healthy_cell", c.Err())
		}
	case <-time.After(waitLong):
		t.Fatal("the connection stayed open with no cell behind it")
	}
	if got := metric(t, r.reg, "livecell_edge_reattaches_total", "reason", "failover", "result", "failed"); got != 1 {
		t.Errorf("reattaches_total{failover,failed}: got %v, want 1", got)
	}
}

func TestEdgeDrainHandsPlayersTheirResumeToken(t *testing.T) {
	r := newRig(t, rigOptions{})
	c := r.dial(edge.TransportWS, r.player("p-edge-drain", "b"))
	done := make(chan error, 1)
	go func() { done <- r.edge.Drain(context.Background()) }()
	select {
	case rc := <-c.Reconnects():
		if rc.Reason != "draining" || rc.ResumeToken == "" || rc.Gateway != "" {
			t.Errorf("Reconnect: got %+v, want draining with a resume token and no gateway", rc)
		}
	case <-time.After(waitLong):
		t.Fatal("no Reconnect from the draining edge")
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := r.tryDial(edge.TransportTCP, gameclient.Options{Token: r.player("p-new", "b")}); err == nil {
		t.Error("a drained edge accepted a new session")
	}
}

func TestRouterResolver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				n, _ := c.Read(buf)
				body := `{"home_cell":"b","placement":"failover"}`
				status := "200 OK"
				if !strings.Contains(string(buf[:n]), "player=p-7") {
					status, body = "400 Bad Request", `{}`
				}
				fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
			}()
		}
	}()
	r := &edge.Router{URLs: []string{"http://127.0.0.1:1", "http://" + ln.Addr().String()}}
	cell, err := r.Home(context.Background(), "p-7")
	if err != nil || cell != "b" {
		t.Fatalf("Home: got %q, %v; want b from the second router", cell, err)
	}
	if _, err := r.Home(context.Background(), "p-8"); err == nil {
		t.Error("a 400 answer gave no error")
	}
	// Every router unreachable: they are not asked again for a while, so
	// sessions do not each wait for routers that are down.
	down := &edge.Router{URLs: []string{"http://127.0.0.1:1"}}
	if _, err := down.Home(context.Background(), "p-7"); err == nil {
		t.Fatal("an unreachable router gave no error")
	}
	down.URLs = []string{"http://" + ln.Addr().String()}
	if _, err := down.Home(context.Background(), "p-7"); err == nil {
		t.Error("right after every router failed: asked again, want an immediate error")
	}
	// A router that refuses one player (4xx) is not down.
	one := &edge.Router{URLs: []string{"http://" + ln.Addr().String()}}
	if _, err := one.Home(context.Background(), "p-8"); err == nil {
		t.Fatal("a 400 answer gave no error")
	}
	if cell, err := one.Home(context.Background(), "p-7"); err != nil || cell != "b" {
		t.Errorf("after a 400 for another player: got %q, %v; want the router asked", cell, err)
	}
	// After the backoff, a router that was down is asked again.
	gone := &edge.Router{URLs: []string{"http://127.0.0.1:1"}, Backoff: time.Millisecond}
	if _, err := gone.Home(context.Background(), "p-7"); err == nil {
		t.Fatal("an unreachable router gave no error")
	}
	time.Sleep(5 * time.Millisecond)
	gone.URLs = []string{"http://" + ln.Addr().String()}
	if cell, err := gone.Home(context.Background(), "p-7"); err != nil || cell != "b" {
		t.Errorf("after the backoff: got %q, %v; want the router asked again", cell, err)
	}
}

func TestGatewayStopMovesTheSession(t *testing.T) {
	r := newRig(t, rigOptions{})
	c := r.dial(edge.TransportWS, r.player("p-stop", "a"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := r.cell["a"].gw.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case push := <-c.Pushes():
		var m protocol.SessionMoved
		if push.Topic != protocol.TopicSessionMoved || json.Unmarshal(push.Data, &m) != nil || m.Cell != "b" || m.Reason != "shutting_down" {
			t.Fatalf("push %s %s, want session.moved to b for shutting_down", push.Topic, push.Data)
		}
	case <-c.Done():
		t.Fatalf("the player's connection closed: %v", c.Err())
	case <-time.After(waitLong):
		t.Fatal("no session.moved push")
	}
	if got := where(t, c); got != "b" {
		t.Errorf("served by %q after the stop, want b", got)
	}
}

func TestPlayerWhoDoesNotReadIsDropped(t *testing.T) {
	r := newRig(t, rigOptions{edgeCfg: func(c *edge.Config) { c.OutboundQueue = 4; c.WriteTimeout = time.Second }})
	nc, err := r.rawDial(context.Background(), edge.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	hello, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Token: r.player("p-deaf", "b")})
	if _, err := nc.Write(protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: 1}, Payload: hello})); err != nil {
		t.Fatal(err)
	}
	gw := r.cell["b"].gw
	eventually(t, "the session at the gateway", func() bool { return gw.Sessions() == 1 })
	big, _ := json.Marshal(strings.Repeat("x", 60<<10))
	for i := 0; i < 200 && metric(t, r.reg, "livecell_edge_closes_total", "reason", "slow_consumer") == 0; i++ {
		if _, err := gw.Push(context.Background(), "p-deaf", protocol.Push{Topic: "test.big", Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the edge to drop the player", func() bool {
		return metric(t, r.reg, "livecell_edge_closes_total", "reason", "slow_consumer") == 1
	})
	// Its session at the gateway ends with it.
	eventually(t, "the gateway session to end", func() bool { return gw.Sessions() == 0 })
	if got := metric(t, r.reg, "livecell_edge_sessions", "transport", "tcp"); got != 0 {
		t.Errorf("sessions{tcp}: got %v, want 0", got)
	}
}
