package gameclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// waitLimit bounds how long a test waits for an event that must happen; it
// only turns a hang into a failure and is never what a test synchronises on.
const waitLimit = 10 * time.Second

// fakeServer is a minimal gateway built on the protocol package: it accepts
// one connection and runs a script against it. The real gateway is tested on
// its own; this one lets each test decide exactly which frames come back.
type fakeServer struct {
	t    *testing.T
	ln   net.Listener
	done chan struct{}
}

// serverConn is the server's side of one session.
type serverConn struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader
}

func startServer(t *testing.T, script func(s *serverConn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(fs.done)
		nc, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer nc.Close()
		script(&serverConn{t: t, nc: nc, r: protocol.NewReader(nc, 0)})
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-fs.done:
		case <-time.After(waitLimit):
			t.Error("fake server script did not finish")
		}
	})
	return fs
}

func (fs *fakeServer) addr() string { return fs.ln.Addr().String() }

// wait blocks until the script has finished.
func (fs *fakeServer) wait() {
	fs.t.Helper()
	select {
	case <-fs.done:
	case <-time.After(waitLimit):
		fs.t.Fatal("fake server script did not finish")
	}
}

// next reads the next frame, copying the payload out of the reader's buffer.
func (s *serverConn) next() (protocol.Frame, error) {
	f, err := s.r.Next()
	f.Payload = append([]byte(nil), f.Payload...)
	return f, err
}

// expect reads the next frame and checks its opcode.
func (s *serverConn) expect(op protocol.Opcode) protocol.Frame {
	f, err := s.next()
	if err != nil {
		s.t.Errorf("server: read, want %s: %v", op, err)
		return f
	}
	if f.Opcode != op {
		s.t.Errorf("server: got opcode %s, want %s", f.Opcode, op)
	}
	return f
}

func (s *serverConn) send(flags protocol.Flags, op protocol.Opcode, id uint32, payload []byte) {
	if err := protocol.WriteFrame(s.nc, protocol.Frame{Header: protocol.Header{Flags: flags, Opcode: op, RequestID: id}, Payload: payload}); err != nil {
		s.t.Errorf("server: write %s: %v", op, err)
	}
}

func (s *serverConn) sendJSON(flags protocol.Flags, op protocol.Opcode, id uint32, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Errorf("server: marshal: %v", err)
	}
	s.send(flags, op, id, b)
}

var testWelcome = protocol.Welcome{
	SessionID: "s-1", PlayerID: "p-42", Cell: "eu-west-1",
	HeartbeatMS: 0, IdleTimeoutMS: 45000, MaxFrame: protocol.DefaultMaxFrame,
	ResumeToken: "rt-1", ServerTimeMS: 1767225600000,
}

// drain reads and discards frames until the client hangs up, so the
// script's end (which closes the connection) cannot race the test's checks.
func (s *serverConn) drain() {
	for {
		if _, err := s.r.Next(); err != nil {
			return
		}
	}
}

// accept reads the Hello and answers it with w.
func (s *serverConn) accept(w protocol.Welcome) protocol.Hello {
	f := s.expect(protocol.OpHello)
	var h protocol.Hello
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		s.t.Errorf("server: hello payload %q: %v", f.Payload, err)
	}
	if f.RequestID == 0 || f.IsResponse() {
		s.t.Errorf("server: hello id %d flags %d, want a request with a non-zero id", f.RequestID, f.Flags)
	}
	s.sendJSON(protocol.FlagResponse, protocol.OpHello, f.RequestID, w)
	return h
}

func dial(t *testing.T, fs *fakeServer, opts Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Dial(ctx, fs.addr(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitDone(t *testing.T, c *Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitLimit):
		t.Fatal("connection did not end")
	}
}

func TestHandshake(t *testing.T) {
	hellos := make(chan protocol.Hello, 1)
	fs := startServer(t, func(s *serverConn) {
		hellos <- s.accept(testWelcome)
		s.expect(protocol.OpBye)
	})
	c := dial(t, fs, Options{Token: "jwt-abc", Client: "test/1", Heartbeat: -1})
	h := <-hellos
	want := protocol.Hello{Protocol: protocol.Version, Token: "jwt-abc", Client: "test/1"}
	if h != want {
		t.Errorf("server got Hello %+v, want %+v", h, want)
	}
	if got := c.Welcome(); got != testWelcome {
		t.Errorf("Welcome() = %+v, want %+v", got, testWelcome)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() on an open connection = %v, want nil", err)
	}
	c.Close()
	fs.wait()
}

func TestHandshakeResumeToken(t *testing.T) {
	hellos := make(chan protocol.Hello, 1)
	fs := startServer(t, func(s *serverConn) { hellos <- s.accept(testWelcome) })
	dial(t, fs, Options{ResumeToken: "rt-9", Heartbeat: -1})
	if h := <-hellos; h.ResumeToken != "rt-9" || h.Token != "" {
		t.Errorf("Hello = %+v, want resume_token rt-9 and no token", h)
	}
}

func TestHandshakeRefused(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(s *serverConn, helloID uint32)
		wantCode  apierr.Code
		wantMsg   string
		wantRetry time.Duration
		wantRedir string // gateway of a *ReconnectError
		retryable bool
	}{
		{
			name: "invalid token",
			answer: func(s *serverConn, id uint32) {
				s.sendJSON(protocol.FlagResponse, protocol.OpError, id, protocol.ErrorBody{Code: "invalid_token", Message: "signature mismatch"})
			},
			wantCode: apierr.InvalidToken, wantMsg: "signature mismatch",
		},
		{
			name: "rate limited with retry after",
			answer: func(s *serverConn, id uint32) {
				s.sendJSON(protocol.FlagResponse, protocol.OpError, id, protocol.ErrorBody{Code: "rate_limited", Message: "slow down", Retryable: true, RetryAfterMS: 1500})
			},
			wantCode: apierr.RateLimited, wantMsg: "slow down", wantRetry: 1500 * time.Millisecond, retryable: true,
		},
		{
			name: "connection-level error",
			answer: func(s *serverConn, _ uint32) {
				s.sendJSON(0, protocol.OpError, 0, protocol.ErrorBody{Code: "unsupported_version", Message: "speak version 1"})
			},
			wantCode: apierr.UnsupportedVersion, wantMsg: "speak version 1",
		},
		{
			name: "unknown future code kept verbatim",
			answer: func(s *serverConn, id uint32) {
				s.sendJSON(protocol.FlagResponse, protocol.OpError, id, protocol.ErrorBody{Code: "banned_until_tuesday", Message: "no"})
			},
			wantCode: "banned_until_tuesday", wantMsg: "no",
		},
		{
			name: "bye",
			answer: func(s *serverConn, _ uint32) {
				s.sendJSON(0, protocol.OpBye, 0, protocol.Bye{Reason: "shutting_down"})
			},
			wantCode: apierr.ShuttingDown, wantMsg: "server said bye: shutting_down", retryable: true,
		},
		{
			name: "reconnect elsewhere",
			answer: func(s *serverConn, _ uint32) {
				s.sendJSON(0, protocol.OpReconnect, 0, protocol.Reconnect{Reason: "draining", Gateway: "gw-2:7400", RetryAfterMS: 200})
			},
			wantCode: apierr.Unavailable, wantMsg: "reconnect: draining", wantRetry: 200 * time.Millisecond, wantRedir: "gw-2:7400", retryable: true,
		},
		{
			name:     "closed without an answer",
			answer:   func(s *serverConn, _ uint32) { s.nc.Close() },
			wantCode: apierr.Unavailable, wantMsg: "connection lost during the handshake", retryable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := startServer(t, func(s *serverConn) {
				f := s.expect(protocol.OpHello)
				tt.answer(s, f.RequestID)
			})
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, err := Dial(ctx, fs.addr(), Options{Token: "t"})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			e, ok := apierr.From(err)
			if !ok {
				t.Fatalf("Dial error %v (%T), want an *apierr.Error in its chain", err, err)
			}
			if e.Code != tt.wantCode || e.Msg != tt.wantMsg || e.RetryAfter != tt.wantRetry {
				t.Errorf("error = code %q msg %q retry %v, want %q %q %v", e.Code, e.Msg, e.RetryAfter, tt.wantCode, tt.wantMsg, tt.wantRetry)
			}
			if got := e.Code.Retryable(); got != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", got, tt.retryable)
			}
			var re *ReconnectError
			if got := errors.As(err, &re); got != (tt.wantRedir != "") {
				t.Fatalf("errors.As(ReconnectError) = %v, want %v", got, tt.wantRedir != "")
			}
			if re != nil && re.Reconnect.Gateway != tt.wantRedir {
				t.Errorf("redirect gateway = %q, want %q", re.Reconnect.Gateway, tt.wantRedir)
			}
		})
	}
}

func TestHandshakeContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs := startServer(t, func(s *serverConn) {
		s.expect(protocol.OpHello)
		cancel() // the client is now blocked waiting for the Welcome
		if _, err := s.next(); err == nil {
			t.Error("server: read a frame after the client gave up, want the connection closed")
		}
	})
	_, err := Dial(ctx, fs.addr(), Options{Token: "t"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial = %v, want context.Canceled", err)
	}
	fs.wait()
}

func TestHandshakeTimeout(t *testing.T) {
	fs := startServer(t, func(s *serverConn) {
		s.expect(protocol.OpHello)
		s.drain() // never answer
	})
	_, err := Dial(context.Background(), fs.addr(), Options{Token: "t", RequestTimeout: 20 * time.Millisecond})
	if got := apierr.CodeOf(err); got != apierr.Timeout {
		t.Fatalf("Dial error %v has code %q, want %q", err, got, apierr.Timeout)
	}
	fs.wait()
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	_, err = Dial(context.Background(), addr, Options{})
	if got := apierr.CodeOf(err); got != apierr.Unavailable {
		t.Fatalf("Dial to a closed port = %v (code %q), want code %q", err, got, apierr.Unavailable)
	}
}

// NewConn runs the same handshake over any net.Conn, e.g. a stream relayed
// by an edge; net.Pipe stands in for one.
func TestNewConnOverPipe(t *testing.T) {
	cli, srv := net.Pipe()
	go func() {
		s := &serverConn{t: t, nc: srv, r: protocol.NewReader(srv, 0)}
		s.accept(testWelcome)
		f := s.expect(protocol.OpEcho)
		s.send(protocol.FlagResponse, protocol.OpEcho, f.RequestID, f.Payload)
	}()
	c, err := NewConn(context.Background(), cli, Options{Token: "t", Heartbeat: -1})
	if err != nil {
		t.Fatalf("NewConn: %v", err)
	}
	defer c.Close()
	got, err := c.Request(context.Background(), protocol.OpEcho, []byte("over a pipe"))
	if err != nil || string(got) != "over a pipe" {
		t.Fatalf("Request = %q, %v, want %q, nil", got, err, "over a pipe")
	}
}

func TestOutOfOrderResponses(t *testing.T) {
	const n = 8
	ids := make(chan []uint32, 1)
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		var reqs []protocol.Frame
		for range n {
			reqs = append(reqs, s.expect(protocol.OpEcho))
		}
		var seen []uint32
		// Answer in reverse: every request is in flight by now.
		for i := len(reqs) - 1; i >= 0; i-- {
			seen = append(seen, reqs[i].RequestID)
			s.send(protocol.FlagResponse, protocol.OpEcho, reqs[i].RequestID, append([]byte("re:"), reqs[i].Payload...))
		}
		ids <- seen
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})

	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("msg-%d", i)
			got, err := c.Request(context.Background(), protocol.OpEcho, []byte(msg))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if want := "re:" + msg; string(got) != want {
				t.Errorf("request %d got %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	seen := <-ids
	unique := map[uint32]bool{}
	for _, id := range seen {
		if id == 0 || id == helloID || unique[id] {
			t.Errorf("request id %d reused or reserved; ids %v, want unique, non-zero, not the hello's", id, seen)
		}
		unique[id] = true
	}
}

func TestErrorFramesMapToCodes(t *testing.T) {
	tests := []struct {
		name      string
		flags     protocol.Flags
		body      string
		wantCode  apierr.Code
		wantMsg   string
		wantRetry time.Duration
	}{
		{"not found", protocol.FlagResponse, `{"code":"not_found","message":"no such item","retryable":false}`, apierr.NotFound, "no such item", 0},
		{"retry after", protocol.FlagResponse, `{"code":"unavailable","message":"inventory down","retryable":true,"retry_after_ms":750}`, apierr.Unavailable, "inventory down", 750 * time.Millisecond},
		{"without the response flag", 0, `{"code":"unknown_opcode","message":"0x0999"}`, apierr.UnknownOpcode, "0x0999", 0},
		{"unknown fields ignored", protocol.FlagResponse, `{"code":"conflict","message":"m","trace_id":"abc","new":{"x":1}}`, apierr.Conflict, "m", 0},
		{"empty code", protocol.FlagResponse, `{"message":"?"}`, apierr.Internal, "?", 0},
		{"malformed body", protocol.FlagResponse, `not json`, apierr.Internal, "malformed error frame", 0},
	}
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		for _, tt := range tests {
			f := s.expect(protocol.OpAccountsMe)
			s.send(tt.flags, protocol.OpError, f.RequestID, []byte(tt.body))
		}
		s.drain()
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Request(context.Background(), protocol.OpAccountsMe, []byte("{}"))
			e, ok := apierr.From(err)
			if !ok {
				t.Fatalf("Request error %v, want an *apierr.Error", err)
			}
			if e.Code != tt.wantCode || e.Msg != tt.wantMsg || e.RetryAfter != tt.wantRetry {
				t.Errorf("error = %q %q %v, want %q %q %v", e.Code, e.Msg, e.RetryAfter, tt.wantCode, tt.wantMsg, tt.wantRetry)
			}
			if e.Op != "accounts.me" {
				t.Errorf("error Op = %q, want the request's opcode name %q", e.Op, "accounts.me")
			}
		})
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() after request errors = %v, want nil: error frames for requests do not end the session", err)
	}
}

func TestPushDeliveryAndDropCounting(t *testing.T) {
	const sent = 5
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		for i := range sent {
			s.sendJSON(0, protocol.OpPush, 0, protocol.Push{Topic: "inventory.updated", ID: fmt.Sprintf("evt-%d", i), Data: json.RawMessage(`{"qty":1}`)})
		}
		s.send(0, protocol.OpPush, 0, []byte("not json")) // malformed: dropped
		// Frames are handled in order, so once the client has this
		// response every push before it has been delivered or dropped.
		f := s.expect(protocol.OpEcho)
		s.send(protocol.FlagResponse, protocol.OpEcho, f.RequestID, nil)
		s.drain()
	})
	c := dial(t, fs, Options{Token: "t", PushBuffer: 2, Heartbeat: -1})
	if _, err := c.Request(context.Background(), protocol.OpEcho, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p := <-c.Pushes()
		if want := fmt.Sprintf("evt-%d", i); p.Topic != "inventory.updated" || p.ID != want || string(p.Data) != `{"qty":1}` {
			t.Errorf("push %d = %+v (data %s), want inventory.updated %s {\"qty\":1}", i, p, p.Data, want)
		}
	}
	if got, want := c.Dropped(), uint64(sent-2+1); got != want {
		t.Errorf("Dropped() = %d, want %d (3 over the buffer + 1 malformed)", got, want)
	}
	select {
	case p := <-c.Pushes():
		t.Errorf("extra push %+v, want none beyond the buffer", p)
	default:
	}
}

func TestReconnectDelivered(t *testing.T) {
	want := protocol.Reconnect{Reason: "rehome", Cell: "us-east-1", Gateway: "gw-1.us-east-1:7400", RetryAfterMS: 100, ResumeToken: "rt-2"}
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		s.sendJSON(0, protocol.OpReconnect, 0, protocol.Reconnect{Reason: "draining"})
		s.sendJSON(0, protocol.OpReconnect, 0, want)
		f := s.expect(protocol.OpEcho)
		s.send(protocol.FlagResponse, protocol.OpEcho, f.RequestID, nil)
		s.drain()
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})
	if _, err := c.Request(context.Background(), protocol.OpEcho, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-c.Reconnects():
		if got != want {
			t.Errorf("Reconnect = %+v, want the latest %+v", got, want)
		}
	case <-time.After(waitLimit):
		t.Fatal("no reconnect delivered")
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v, want nil: a reconnect instruction does not end the session by itself", err)
	}
}

func TestHeartbeats(t *testing.T) {
	pongs := make(chan protocol.Frame, 1)
	fs := startServer(t, func(s *serverConn) {
		w := testWelcome
		w.HeartbeatMS = 5 // the client follows the server's interval
		s.accept(w)
		ping := s.expect(protocol.OpPing)
		if ping.IsResponse() || ping.RequestID == 0 {
			t.Errorf("heartbeat = flags %d id %d, want a request with a non-zero id", ping.Flags, ping.RequestID)
		}
		s.send(protocol.FlagResponse, protocol.OpPing, ping.RequestID, nil)

		// The server pings too; the client must answer in kind. Skip the
		// client's own heartbeats while waiting for the answer.
		s.send(0, protocol.OpPing, 77, []byte("srv"))
		for {
			f, err := s.next()
			if err != nil {
				t.Errorf("server: waiting for pong: %v", err)
				return
			}
			if f.Opcode == protocol.OpPing && f.IsResponse() {
				pongs <- f
				return
			}
			if f.Opcode == protocol.OpPing {
				s.send(protocol.FlagResponse, protocol.OpPing, f.RequestID, nil)
			}
		}
	})
	dial(t, fs, Options{Token: "t"})
	fs.wait()
	pong := <-pongs
	if pong.RequestID != 77 || string(pong.Payload) != "srv" || pong.Flags != protocol.FlagResponse {
		t.Errorf("pong = id %d flags %d payload %q, want id 77 flags %d payload %q", pong.RequestID, pong.Flags, pong.Payload, protocol.FlagResponse, "srv")
	}
}

func TestHeartbeatUnansweredEndsSession(t *testing.T) {
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		s.drain() // never answer a ping
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: time.Millisecond, RequestTimeout: 20 * time.Millisecond})
	waitDone(t, c)
	if got := apierr.CodeOf(c.Err()); got != apierr.Timeout {
		t.Fatalf("Err() = %v (code %q), want code %q", c.Err(), got, apierr.Timeout)
	}
}

func TestServerCloseFailsInFlightRequests(t *testing.T) {
	tests := []struct {
		name    string
		end     func(s *serverConn)
		wantErr func(err error) string // "" when the connection's Err is right
	}{
		{
			name: "abrupt close",
			end:  func(s *serverConn) { s.nc.Close() },
			wantErr: func(err error) string {
				if !errors.Is(err, io.EOF) {
					return "want io.EOF in the chain"
				}
				return ""
			},
		},
		{
			name: "error frame then close",
			end: func(s *serverConn) {
				s.sendJSON(0, protocol.OpError, 0, protocol.ErrorBody{Code: "idle_timeout", Message: "idle", Retryable: true})
				s.nc.Close()
			},
			wantErr: func(err error) string {
				if e, ok := apierr.From(err); !ok || e.Code != apierr.IdleTimeout || e.Msg != "idle" {
					return "want *apierr.Error idle_timeout \"idle\""
				}
				return ""
			},
		},
		{
			name: "bye",
			end:  func(s *serverConn) { s.sendJSON(0, protocol.OpBye, 0, protocol.Bye{Reason: "maintenance"}) },
			wantErr: func(err error) string {
				if e, ok := apierr.From(err); !ok || e.Code != apierr.Unavailable || e.Msg != "server said bye: maintenance" {
					return "want *apierr.Error unavailable \"server said bye: maintenance\""
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := startServer(t, func(s *serverConn) {
				s.accept(testWelcome)
				s.expect(protocol.OpAccountsMe) // the request is now in flight
				tt.end(s)
			})
			c := dial(t, fs, Options{Token: "t", Heartbeat: -1})
			_, err := c.Request(context.Background(), protocol.OpAccountsMe, []byte("{}"))
			e, ok := apierr.From(err)
			if !ok || e.Code != apierr.Unavailable || !e.Code.Retryable() {
				t.Fatalf("in-flight request error = %v, want a retryable %q", err, apierr.Unavailable)
			}
			waitDone(t, c)
			if msg := tt.wantErr(c.Err()); msg != "" {
				t.Errorf("Err() = %v: %s", c.Err(), msg)
			}
			if !errors.Is(err, c.Err()) {
				t.Errorf("request error %v does not wrap the connection's cause %v", err, c.Err())
			}
			if _, ok := <-c.Pushes(); ok {
				t.Error("Pushes() still open after the connection ended")
			}
			_, err = c.Request(context.Background(), protocol.OpAccountsMe, nil)
			if got := apierr.CodeOf(err); got != apierr.Unavailable {
				t.Errorf("request after the end = %v (code %q), want %q", err, got, apierr.Unavailable)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		s.expect(protocol.OpEcho) // never answered
		s.drain()
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1, RequestTimeout: 20 * time.Millisecond})
	_, err := c.Request(context.Background(), protocol.OpEcho, []byte("1"))
	e, ok := apierr.From(err)
	if !ok || e.Code != apierr.Timeout || e.Op != "echo" || !e.Code.Retryable() {
		t.Fatalf("unanswered request = %v, want a retryable *apierr.Error timeout for op echo", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v, want nil: one slow request does not end the session", err)
	}
}

func TestRequestCancelAndLateAnswer(t *testing.T) {
	readFirst := make(chan struct{})
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		late := s.expect(protocol.OpEcho)
		close(readFirst) // the test cancels the request now
		// The pre-cancelled request never goes out: the next frame is "3".
		f := s.expect(protocol.OpEcho)
		if string(f.Payload) != "3" {
			t.Errorf("server got payload %q, want %q", f.Payload, "3")
		}
		// A late answer to a request that gave up must be ignored, not
		// mistaken for the next request's answer.
		s.send(protocol.FlagResponse, protocol.OpEcho, late.RequestID, []byte("late"))
		s.send(protocol.FlagResponse, protocol.OpEcho, f.RequestID, []byte("fresh"))
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-readFirst
		cancel()
	}()
	if _, err := c.Request(ctx, protocol.OpEcho, []byte("1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request = %v, want context.Canceled", err)
	}
	if _, err := c.Request(ctx, protocol.OpEcho, []byte("2")); !errors.Is(err, context.Canceled) {
		t.Fatalf("request with a cancelled context = %v, want context.Canceled", err)
	}
	got, err := c.Request(context.Background(), protocol.OpEcho, []byte("3"))
	if err != nil || string(got) != "fresh" {
		t.Fatalf("request after a late answer = %q, %v, want %q", got, err, "fresh")
	}
}

func TestRequestLargerThanServerMax(t *testing.T) {
	fs := startServer(t, func(s *serverConn) {
		w := testWelcome
		w.MaxFrame = 64
		s.accept(w)
		f := s.expect(protocol.OpEcho) // only the frame that fits arrives
		if len(f.Payload) != 52 {
			t.Errorf("server got a %d-byte payload, want 52", len(f.Payload))
		}
		s.send(protocol.FlagResponse, protocol.OpEcho, f.RequestID, nil)
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})
	_, err := c.Request(context.Background(), protocol.OpEcho, make([]byte, 53))
	if got := apierr.CodeOf(err); got != apierr.FrameTooLarge {
		t.Fatalf("65-byte frame to a 64-byte server = %v (code %q), want %q", err, got, apierr.FrameTooLarge)
	}
	if _, err := c.Request(context.Background(), protocol.OpEcho, make([]byte, 52)); err != nil {
		t.Fatalf("64-byte frame: %v, want success", err)
	}
}

func TestPing(t *testing.T) {
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		f := s.expect(protocol.OpPing)
		s.send(protocol.FlagResponse, protocol.OpPing, f.RequestID, nil)
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})
	rtt, err := c.Ping(context.Background())
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if rtt <= 0 {
		t.Errorf("Ping RTT = %v, want > 0", rtt)
	}
}

func TestClose(t *testing.T) {
	byes := make(chan protocol.Bye, 1)
	gotEcho := make(chan struct{})
	fs := startServer(t, func(s *serverConn) {
		s.accept(testWelcome)
		s.expect(protocol.OpEcho) // left unanswered
		close(gotEcho)
		f := s.expect(protocol.OpBye)
		var b protocol.Bye
		if err := json.Unmarshal(f.Payload, &b); err != nil {
			t.Errorf("server: bye payload %q: %v", f.Payload, err)
		}
		byes <- b
		if _, err := s.next(); err != io.EOF {
			t.Errorf("server: after bye got %v, want io.EOF", err)
		}
	})
	c := dial(t, fs, Options{Token: "t", Heartbeat: -1})

	inflight := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), protocol.OpEcho, []byte("x"))
		inflight <- err
	}()
	<-gotEcho // the request is registered before it is written: it is in flight
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	if b := <-byes; b.Reason != "client_closed" {
		t.Errorf("Bye reason = %q, want %q", b.Reason, "client_closed")
	}
	if err := <-inflight; apierr.CodeOf(err) != apierr.Unavailable || !errors.Is(err, ErrClosed) {
		t.Errorf("in-flight request = %v, want unavailable wrapping ErrClosed", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done() not closed after Close")
	}
	if err := c.Err(); err != ErrClosed {
		t.Errorf("Err() = %v, want ErrClosed", err)
	}
	if _, ok := <-c.Pushes(); ok {
		t.Error("Pushes() open after Close returned")
	}
	if _, ok := <-c.Reconnects(); ok {
		t.Error("Reconnects() open after Close returned")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	fs.wait()
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.RequestTimeout != DefaultRequestTimeout || got.PushBuffer != DefaultPushBuffer || got.MaxFrame != protocol.HardMaxFrame {
		t.Errorf("defaults = timeout %v buffer %d max %d, want %v %d %d", got.RequestTimeout, got.PushBuffer, got.MaxFrame, DefaultRequestTimeout, DefaultPushBuffer, protocol.HardMaxFrame)
	}
	set := Options{RequestTimeout: time.Second, PushBuffer: 3, MaxFrame: 100}.withDefaults()
	if set.RequestTimeout != time.Second || set.PushBuffer != 3 || set.MaxFrame != 100 {
		t.Errorf("explicit options changed: %+v", set)
	}
}
