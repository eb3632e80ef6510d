package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

func TestHelloWelcome(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.HeartbeatInterval = 7 * time.Second }, nil)
	c := h.dial(t)
	before := time.Now().UnixMilli()
	w := c.hello("good:alice")

	if w.PlayerID != "alice" || w.Cell != "test-cell" {
		t.Errorf("got player %q cell %q, want alice test-cell", w.PlayerID, w.Cell)
	}
	if len(w.SessionID) < 16 {
		t.Errorf("got session id %q, want a random id of at least 16 characters", w.SessionID)
	}
	if w.HeartbeatMS != 7000 || w.IdleTimeoutMS != 21000 {
		t.Errorf("got heartbeat %dms idle %dms, want 7000 and 21000 (3x heartbeat)", w.HeartbeatMS, w.IdleTimeoutMS)
	}
	if w.MaxFrame != protocol.DefaultMaxFrame {
		t.Errorf("got max_frame %d, want %d", w.MaxFrame, protocol.DefaultMaxFrame)
	}
	if want := "resume:alice:" + w.SessionID + ":test-cell:0"; w.ResumeToken != want {
		t.Errorf("got resume token %q, want %q", w.ResumeToken, want)
	}
	if w.ServerTimeMS < before || w.ServerTimeMS > time.Now().UnixMilli() {
		t.Errorf("got server_time_ms %d, want between %d and now", w.ServerTimeMS, before)
	}
	if got := h.g.Sessions(); got != 1 {
		t.Errorf("got %d sessions, want 1", got)
	}
	if got := counter(h.g.m.sessions); got != 1 {
		t.Errorf("got sessions gauge %v, want 1", got)
	}
	if got := counter(h.g.m.connections.WithLabelValues(connAccepted)); got != 1 {
		t.Errorf("got connections_total{accepted} %v, want 1", got)
	}
	if got := counter(h.g.m.framesIn.WithLabelValues("hello")); got != 1 {
		t.Errorf("got frames_received_total{hello} %v, want 1", got)
	}
	if got := counter(h.g.m.framesOut.WithLabelValues("hello")); got != 1 {
		t.Errorf("got frames_sent_total{hello} %v, want 1", got)
	}

	// A second session id differs.
	if w2 := h.dial(t).hello("good:bob"); w2.SessionID == w.SessionID {
		t.Errorf("got the same session id %q twice, want random ids", w.SessionID)
	}
}

func TestPingAndEcho(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	tests := []struct {
		name    string
		op      protocol.Opcode
		payload string
	}{
		{"ping", protocol.OpPing, `{"t":1}`},
		{"ping empty", protocol.OpPing, ``},
		{"echo", protocol.OpEcho, `not even json \x00`},
		{"echo large", protocol.OpEcho, strings.Repeat("e", 20000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, f := c.request(tt.op, tt.payload)
			if f.Opcode != tt.op || !f.IsResponse() || f.RequestID != id {
				t.Fatalf("got opcode %v flags %b id %d, want %v response to %d", f.Opcode, f.Flags, f.RequestID, tt.op, id)
			}
			if string(f.Payload) != tt.payload {
				t.Errorf("got payload of %d bytes, want the %d sent", len(f.Payload), len(tt.payload))
			}
		})
	}
	if got := counter(h.g.m.requests.WithLabelValues("echo", codeOK)); got != 2 {
		t.Errorf("got requests_total{echo,ok} %v, want 2", got)
	}
	if got := counter(h.g.m.framesOut.WithLabelValues("ping")); got != 2 {
		t.Errorf("got frames_sent_total{ping} %v, want 2", got)
	}
}

const (
	opWhoAmI protocol.Opcode = 0x0101
	opFail   protocol.Opcode = 0x0102
	opBlock  protocol.Opcode = 0x0103
)

func TestHandlerRequest(t *testing.T) {
	handlers := protocol.Handlers{
		opWhoAmI: func(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("handler context has no deadline")
			}
			return json.Marshal(map[string]string{"player": c.PlayerID, "session": c.SessionID, "cell": c.Cell, "got": string(payload)})
		},
	}
	h := startGateway(t, nil, handlers)
	c := h.dial(t)
	w := c.hello("good:alice")

	id, f := c.request(opWhoAmI, `{"q":1}`)
	if f.Opcode != opWhoAmI || !f.IsResponse() || f.RequestID != id {
		t.Fatalf("got opcode %v flags %b id %d (%s), want %v response to %d", f.Opcode, f.Flags, f.RequestID, f.Payload, opWhoAmI, id)
	}
	var got map[string]string
	if err := json.Unmarshal(f.Payload, &got); err != nil {
		t.Fatalf("decode response %q: %v", f.Payload, err)
	}
	want := map[string]string{"player": "alice", "session": w.SessionID, "cell": "test-cell", "got": `{"q":1}`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %s %q, want %q", k, got[k], v)
		}
	}
	if got := counter(h.g.m.requests.WithLabelValues("accounts.me", codeOK)); got != 1 {
		t.Errorf("got requests_total{accounts.me,ok} %v, want 1", got)
	}
	if got := histogramCount(t, h.reg, "livecell_gateway_request_duration_seconds", "accounts.me"); got != 1 {
		t.Errorf("got %d request_duration_seconds{accounts.me} observations, want 1", got)
	}
}

func TestHandlerErrors(t *testing.T) {
	handlers := protocol.Handlers{
		opFail: func(ctx context.Context, _ protocol.Caller, payload []byte) ([]byte, error) {
			switch string(payload) {
			case "coded":
				return nil, apierr.New(apierr.NotFound, "no such item")
			case "leaky":
				return nil, errors.New("pq: password authentication failed for user root")
			case "retry":
				return nil, &apierr.Error{Code: apierr.Unavailable, RetryAfter: 1500 * time.Millisecond}
			case "panic":
				panic("handler bug")
			case "slow":
				<-ctx.Done()
				return nil, ctx.Err()
			case "huge":
				return make([]byte, protocol.DefaultMaxFrame), nil
			}
			return nil, nil
		},
	}
	h := startGateway(t, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond }, handlers)
	c := h.dial(t)
	c.hello("good:alice")
	tests := []struct {
		payload    string
		code       apierr.Code
		msg        string
		retryAfter int64
	}{
		{"coded", apierr.NotFound, "no such item", 0},
		{"leaky", apierr.Internal, "internal error", 0},
		{"retry", apierr.Unavailable, "service unavailable, retry later", 1500},
		{"panic", apierr.Internal, "internal error", 0},
		{"slow", apierr.Timeout, "the request timed out", 0},
		{"huge", apierr.Internal, "internal error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			id, f := c.request(opFail, tt.payload)
			body := wantError(t, f, tt.code, id)
			if body.Message != tt.msg {
				t.Errorf("got message %q, want %q", body.Message, tt.msg)
			}
			if body.RetryAfterMS != tt.retryAfter {
				t.Errorf("got retry_after_ms %d, want %d", body.RetryAfterMS, tt.retryAfter)
			}
			c.ping() // the session survives
			if got := counter(h.g.m.requests.WithLabelValues("unknown", string(tt.code))); got < 1 {
				t.Errorf("got requests_total{unknown,%s} %v, want at least 1", tt.code, got)
			}
		})
	}
}

func TestRefusedRequestsKeepSession(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	tests := []struct {
		name  string
		frame protocol.Frame
		code  apierr.Code
	}{
		{"unknown opcode", protocol.Frame{Header: protocol.Header{Opcode: 0x0999, RequestID: 41}}, apierr.UnknownOpcode},
		{"server opcode from client", protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPush, RequestID: 42}}, apierr.UnknownOpcode},
		{"binary payload", protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, Flags: protocol.FlagBinary, RequestID: 43}}, apierr.UnsupportedEncoding},
		{"second hello", protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: 44}, Payload: []byte(helloPayload("good:alice"))}, apierr.AlreadyAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.write(tt.frame)
			wantError(t, c.read(), tt.code, tt.frame.RequestID)
			c.ping()
		})
	}
	for code, want := range map[apierr.Code]float64{apierr.UnknownOpcode: 2, apierr.UnsupportedEncoding: 1, apierr.AlreadyAuth: 1} {
		if got := counter(h.g.m.protocolErrors.WithLabelValues(string(code))); got != want {
			t.Errorf("got protocol_errors_total{%s} %v, want %v", code, got, want)
		}
	}
	if got := counter(h.g.m.framesIn.WithLabelValues("unknown")); got != 1 {
		t.Errorf("got frames_received_total{unknown} %v, want 1", got)
	}
	if got := h.g.Sessions(); got != 1 {
		t.Errorf("got %d sessions, want 1", got)
	}
}

func TestClientResponseFramesAreIgnored(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	// An answer to a server ping: accepted silently, so the next frame
	// the client reads is its own ping's answer.
	c.write(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPing, Flags: protocol.FlagResponse, RequestID: 9}})
	c.ping()
}

func TestClientBye(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	c.write(byeFrame("quit"))
	c.wantClosed()
	eventually(t, "session to leave", func() bool { return h.g.Sessions() == 0 })
}

// frameBytes encodes a frame and lets a test corrupt its header.
func frameBytes(f protocol.Frame, corrupt func([]byte)) []byte {
	b := protocol.Encode(f)
	if corrupt != nil {
		corrupt(b)
	}
	return b
}

func TestBrokenFramingCloses(t *testing.T) {
	ping := protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPing, RequestID: 5}}
	tests := []struct {
		name  string
		authd bool
		raw   []byte
		code  apierr.Code
	}{
		{"length shorter than header", true, []byte{0, 0, 0, 2, 1, 0}, apierr.BadFrame},
		{"garbage bytes", true, []byte("\x00\x00\x00\x00garbage!"), apierr.BadFrame},
		{"http request", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), apierr.FrameTooLarge},
		{"wrong version", true, frameBytes(ping, func(b []byte) { b[4] = 9 }), apierr.UnsupportedVersion},
		{"reserved flag", true, frameBytes(ping, func(b []byte) { b[5] = 0x80 }), apierr.BadFrame},
		{"one over max frame", true, binary.BigEndian.AppendUint32(nil, protocol.DefaultMaxFrame-protocol.LengthSize+1), apierr.FrameTooLarge},
		{"before hello", false, frameBytes(ping, func(b []byte) { b[4] = 0 }), apierr.UnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startGateway(t, nil, nil)
			c := h.dial(t)
			if tt.authd {
				c.hello("good:alice")
			}
			c.writeRaw(tt.raw)
			wantError(t, c.read(), tt.code, 0)
			c.wantClosed()
			if got := counter(h.g.m.protocolErrors.WithLabelValues(string(tt.code))); got != 1 {
				t.Errorf("got protocol_errors_total{%s} %v, want 1", tt.code, got)
			}
			eventually(t, "session to leave", func() bool { return h.g.Sessions() == 0 })
		})
	}
}

// TestOversizedLengthPrefix sends only a 4 GiB length prefix: the gateway
// must refuse it from those four bytes, without waiting for (or allocating)
// the body it announces.
func TestOversizedLengthPrefix(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c.writeRaw([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	wantError(t, c.read(), apierr.FrameTooLarge, 0)
	c.wantClosed()
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("got %d bytes allocated while refusing the frame, want well under 1 MiB", grew)
	}
}

func TestTruncatedFrameThenEOF(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:alice")
	full := protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, RequestID: 3}, Payload: []byte("half a frame")})
	c.writeRaw(full[:len(full)-5])
	if err := c.nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	c.wantClosed()
	eventually(t, "session to leave", func() bool { return h.g.Sessions() == 0 })
	if got := counter(h.g.m.requests.WithLabelValues("echo", codeOK)); got != 0 {
		t.Errorf("got requests_total{echo,ok} %v, want 0: the truncated frame must not be answered", got)
	}
}

func TestFrameBeforeHello(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	id, f := c.request(protocol.OpEcho, "hi")
	wantError(t, f, apierr.NotAuthenticated, id)
	c.wantClosed()
	if got := counter(h.g.m.authFailures.WithLabelValues(string(apierr.NotAuthenticated))); got != 1 {
		t.Errorf("got auth_failures_total{not_authenticated} %v, want 1", got)
	}
}

func TestBinaryHelloThenHello(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.write(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, Flags: protocol.FlagBinary, RequestID: 1}, Payload: []byte{1, 2}})
	wantError(t, c.read(), apierr.UnsupportedEncoding, 1)
	if w := c.hello("good:alice"); w.PlayerID != "alice" {
		t.Errorf("got player %q, want alice", w.PlayerID)
	}
}

func TestHelloRejected(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		code    apierr.Code
	}{
		{"bad token", helloPayload("forged"), apierr.InvalidToken},
		{"expired token", helloPayload("expired"), apierr.TokenExpired},
		{"not json", `{"protocol":1,`, apierr.BadRequest},
		{"wrong protocol", `{"protocol":2,"token":"good:alice"}`, apierr.UnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startGateway(t, nil, nil)
			c := h.dial(t)
			id, f := c.request(protocol.OpHello, tt.payload)
			body := wantError(t, f, tt.code, id)
			if strings.Contains(body.Message, "signature") {
				t.Errorf("got message %q, want the cause kept out of the client's view", body.Message)
			}
			c.wantClosed()
			if got := counter(h.g.m.authFailures.WithLabelValues(string(tt.code))); got != 1 {
				t.Errorf("got auth_failures_total{%s} %v, want 1", tt.code, got)
			}
			if got := h.g.Sessions(); got != 0 {
				t.Errorf("got %d sessions, want 0", got)
			}
		})
	}
}

func TestAuthTimeout(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.AuthTimeout = 100 * time.Millisecond }, nil)
	c := h.dial(t)
	wantError(t, c.read(), apierr.AuthTimeout, 0)
	c.wantClosed()
	if got := counter(h.g.m.authFailures.WithLabelValues(string(apierr.AuthTimeout))); got != 1 {
		t.Errorf("got auth_failures_total{auth_timeout} %v, want 1", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel() // mostly waiting: overlap it with the other tests
	// Long enough that a stalled, loaded machine does not starve the pings
	// below of their margin (idle minus the ping interval).
	const idle = time.Second
	h := startGateway(t, func(c *Config) { c.IdleTimeout = idle }, nil)
	c := h.dial(t)
	if w := c.hello("good:alice"); w.IdleTimeoutMS != idle.Milliseconds() {
		t.Errorf("got idle_timeout_ms %d, want %d", w.IdleTimeoutMS, idle.Milliseconds())
	}
	// Frames well inside the timeout keep the session alive past it.
	for end := time.Now().Add(idle + idle/4); time.Now().Before(end); time.Sleep(idle / 20) {
		c.ping()
	}
	// Then silence.
	wantError(t, c.read(), apierr.IdleTimeout, 0)
	c.wantClosed()
	if got := counter(h.g.m.protocolErrors.WithLabelValues(string(apierr.IdleTimeout))); got != 1 {
		t.Errorf("got protocol_errors_total{idle_timeout} %v, want 1", got)
	}
	eventually(t, "session to leave", func() bool { return h.g.Sessions() == 0 })
}

func TestRateLimit(t *testing.T) {
	const burst = 3
	// A refill far slower than the test, so exactly burst frames pass.
	h := startGateway(t, func(c *Config) { c.RateLimit = 0.01; c.RateBurst = burst }, nil)
	c := h.dial(t)
	c.hello("good:alice")
	for i := 0; i < burst; i++ {
		if _, f := c.request(protocol.OpEcho, "x"); f.Opcode != protocol.OpEcho {
			t.Fatalf("frame %d: got opcode %v (%s), want echo within the burst", i, f.Opcode, f.Payload)
		}
	}
	id, f := c.request(protocol.OpEcho, "x")
	body := wantError(t, f, apierr.RateLimited, id)
	if body.RetryAfterMS < 1000 {
		t.Errorf("got retry_after_ms %d, want about 100s at 0.01 frames/s", body.RetryAfterMS)
	}
	if got := counter(h.g.m.rateLimited); got != 1 {
		t.Errorf("got rate_limited_total %v, want 1", got)
	}
	// Heartbeats do not count against the budget.
	c.ping()
	c.ping()

	// A client that ignores retry_after_ms is cut off.
	for i := 1; i < maxViolations; i++ {
		c.write(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, RequestID: c.id()}})
	}
	for i := 1; i < maxViolations; i++ {
		wantError(t, c.read(), apierr.RateLimited, id+2+uint32(i))
	}
	c.wantClosed()
	if got := counter(h.g.m.rateLimited); got != maxViolations {
		t.Errorf("got rate_limited_total %v, want %d", got, maxViolations)
	}
}

func TestInFlightLimit(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	handlers := protocol.Handlers{opBlock: func(ctx context.Context, _ protocol.Caller, p []byte) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-release:
			return p, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	h := startGateway(t, func(c *Config) { c.MaxInFlight = 2 }, handlers)
	c := h.dial(t)
	c.hello("good:alice")
	for i := 0; i < 2; i++ {
		c.write(protocol.Frame{Header: protocol.Header{Opcode: opBlock, RequestID: c.id()}, Payload: []byte("held")})
		<-started
	}
	id, f := c.request(opBlock, "third")
	body := wantError(t, f, apierr.RateLimited, id)
	if !strings.Contains(body.Message, "in flight") {
		t.Errorf("got message %q, want it to name the in-flight limit", body.Message)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if f := c.read(); f.Opcode != opBlock || !f.IsResponse() || string(f.Payload) != "held" {
			t.Errorf("got opcode %v payload %q, want the held request's answer", f.Opcode, f.Payload)
		}
	}
	if got := counter(h.g.m.rateLimited); got != 1 {
		t.Errorf("got rate_limited_total %v, want 1", got)
	}
}
