package loadtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// fakeGateway speaks the gateway's side of the protocol well enough for
// the load tester: it verifies real player tokens (or resume tokens it
// issued), answers ping, echo and accounts.me, refuses inventory.get with
// not_found, pushes an event after every echo, and can tell sessions to
// move elsewhere.
type fakeGateway struct {
	t      *testing.T
	ln     net.Listener
	cell   string
	verify *token.Verifier

	hellos, resumes, requests, echoes atomic.Int64
	// moveAfter, when set, answers the n-th request of a session with a
	// Reconnect to moveTo instead.
	moveAfter int64
	moveTo    string

	mu      sync.Mutex
	sources map[string]int // connections by remote IP
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func writeKey(t *testing.T) (string, *token.KeySet) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := token.EncodePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := token.LoadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, ks
}

func startFakeGateway(t *testing.T, cell string, ks *token.KeySet, opts ...func(*fakeGateway)) *fakeGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeGateway(t, ln, cell, ks, opts...)
}

// serveFakeGateway serves the fake gateway on any listener: TCP, or an
// edge transport's.
func serveFakeGateway(t *testing.T, ln net.Listener, cell string, ks *token.KeySet, opts ...func(*fakeGateway)) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, ln: ln, cell: cell, verify: token.NewVerifier(ks, nil), sources: map[string]int{}, conns: map[net.Conn]bool{}}
	for _, o := range opts {
		o(g)
	}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.close)
	return g
}

func (g *fakeGateway) addr() string { return g.ln.Addr().String() }

func (g *fakeGateway) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *fakeGateway) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		g.mu.Lock()
		g.sources[host]++
		g.conns[c] = true
		g.mu.Unlock()
		g.wg.Add(1)
		go g.serve(c)
	}
}

func (g *fakeGateway) sourceIPs() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.sources {
		out[k] = v
	}
	return out
}

func (g *fakeGateway) serve(c net.Conn) {
	defer g.wg.Done()
	defer func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
		c.Close()
	}()
	r := protocol.NewReader(c, protocol.DefaultMaxFrame)
	var wmu sync.Mutex
	send := func(f protocol.Frame) bool {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(protocol.Encode(f))
		return err == nil
	}
	sendErr := func(id uint32, code apierr.Code, msg string) bool {
		b, _ := json.Marshal(protocol.ErrorBody{Code: string(code), Message: msg})
		return send(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpError, RequestID: id}, Payload: b})
	}
	f, err := r.Next()
	if err != nil || f.Opcode != protocol.OpHello {
		return
	}
	var h protocol.Hello
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		sendErr(f.RequestID, apierr.BadRequest, "bad hello")
		return
	}
	var player string
	switch {
	case strings.HasPrefix(h.ResumeToken, "resume:"+g.cell+":"):
		player = strings.TrimPrefix(h.ResumeToken, "resume:"+g.cell+":")
		g.resumes.Add(1)
	case h.ResumeToken != "":
		sendErr(f.RequestID, apierr.InvalidToken, "unknown resume token")
		return
	default:
		claims, err := g.verify.Verify(h.Token, token.AudiencePlayer)
		if err != nil {
			sendErr(f.RequestID, apierr.CodeOf(err), "bad token")
			return
		}
		if claims.Cell != g.cell {
			sendErr(f.RequestID, apierr.PermissionDenied, "wrong cell")
			return
		}
		player = claims.Subject
		g.hellos.Add(1)
	}
	w, _ := json.Marshal(protocol.Welcome{
		SessionID: "s", PlayerID: player, Cell: g.cell, HeartbeatMS: 30_000, IdleTimeoutMS: 90_000,
		MaxFrame: protocol.DefaultMaxFrame, ResumeToken: "resume:" + g.cell + ":" + player,
	})
	if !send(protocol.Frame{Header: protocol.Header{Flags: protocol.FlagResponse, Opcode: protocol.OpHello, RequestID: f.RequestID}, Payload: w}) {
		return
	}
	var n int64
	for {
		f, err := r.Next()
		if err != nil {
			return
		}
		if f.Opcode == protocol.OpBye {
			return
		}
		if f.IsResponse() {
			continue
		}
		g.requests.Add(1)
		n++
		if g.moveAfter > 0 && n == g.moveAfter {
			b, _ := json.Marshal(protocol.Reconnect{Reason: "draining", Gateway: g.moveTo, RetryAfterMS: 10})
			send(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}, Payload: b})
			return
		}
		resp := protocol.Frame{Header: protocol.Header{Flags: protocol.FlagResponse, Opcode: f.Opcode, RequestID: f.RequestID}}
		switch f.Opcode {
		case protocol.OpPing:
		case protocol.OpEcho:
			resp.Payload = append([]byte(nil), f.Payload...)
			g.echoes.Add(1)
		case protocol.OpAccountsMe:
			resp.Payload, _ = json.Marshal(map[string]string{"player_id": player})
		default:
			if !sendErr(f.RequestID, apierr.NotFound, "nothing here") {
				return
			}
			continue
		}
		if !send(resp) {
			return
		}
		if f.Opcode == protocol.OpEcho {
			p, _ := json.Marshal(protocol.Push{Topic: "echo.seen", Data: json.RawMessage(`{}`)})
			if !send(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPush}, Payload: p}) {
				return
			}
		}
	}
}

// refusingAddr is an address nothing listens on.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// droppingListener accepts connections and ends them at once: with a
// reset when reset is set, else an orderly close.
func droppingListener(t *testing.T, reset bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			if reset {
				// Read the Hello first so the reset lands while the
				// client waits for its Welcome.
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				buf := make([]byte, 64)
				_, _ = c.Read(buf)
				_ = c.(*net.TCPConn).SetLinger(0)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}
