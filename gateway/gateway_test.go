package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

func TestNewValidates(t *testing.T) {
	ok := protocol.Handlers{0x0101: func(context.Context, protocol.Caller, []byte) ([]byte, error) { return nil, nil }}
	tests := []struct {
		name    string
		cfg     Config
		deps    Deps
		wantErr string
	}{
		{"valid", Config{CellID: "c", Listen: ":0"}, Deps{Auth: fakeAuth{}, Handlers: ok}, ""},
		{"no cell", Config{Listen: ":0"}, Deps{Auth: fakeAuth{}}, "CellID"},
		{"no listen", Config{CellID: "c"}, Deps{Auth: fakeAuth{}}, "Listen"},
		{"negative max sessions", Config{CellID: "c", Listen: ":0", MaxSessions: -1}, Deps{Auth: fakeAuth{}}, "MaxSessions"},
		{"no authenticator", Config{CellID: "c", Listen: ":0"}, Deps{}, "Auth"},
		{"gateway opcode", Config{CellID: "c", Listen: ":0"}, Deps{Auth: fakeAuth{}, Handlers: protocol.Handlers{
			protocol.OpEcho: func(context.Context, protocol.Caller, []byte) ([]byte, error) { return nil, nil }}}, "0x0010"},
		{"nil handler", Config{CellID: "c", Listen: ":0"}, Deps{Auth: fakeAuth{}, Handlers: protocol.Handlers{0x0101: nil}}, "nil handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.deps)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{CellID: "c", Listen: ":0", HeartbeatInterval: 10 * time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdleTimeout != 30*time.Second || cfg.AuthTimeout != 5*time.Second || cfg.MaxFrame != protocol.DefaultMaxFrame ||
		cfg.OutboundQueue != 256 || cfg.RateLimit != 50 || cfg.RateBurst != 100 || cfg.MaxInFlight != 32 ||
		cfg.RequestTimeout != 10*time.Second || cfg.WriteTimeout != 10*time.Second || cfg.DrainGrace != 10*time.Second {
		t.Errorf("got %+v, want the documented defaults", cfg)
	}
}

func TestBucket(t *testing.T) {
	const rate, burst = 10.0, 2.0
	var b bucket
	steps := []struct {
		at        time.Duration
		ok        bool
		wantRetry time.Duration
	}{
		{time.Second, true, 0},
		{time.Second, true, 0},
		{time.Second, false, 100 * time.Millisecond},
		{time.Second + 50*time.Millisecond, false, 50 * time.Millisecond},
		{time.Second + 100*time.Millisecond, true, 0},
		{time.Hour, true, 0}, // refills to burst, not beyond
		{time.Hour, true, 0},
		{time.Hour, false, 100 * time.Millisecond},
	}
	for i, s := range steps {
		ok, retry := b.take(s.at, rate, burst)
		if ok != s.ok || (retry-s.wantRetry).Abs() > time.Millisecond {
			t.Errorf("step %d at %v: got ok=%v retry=%v, want ok=%v retry=%v", i, s.at, ok, retry, s.ok, s.wantRetry)
		}
	}
}

func TestPush(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.MaxFrame = 4096 }, nil)
	c := h.dial(t)
	c.hello("good:alice")
	ctx := context.Background()

	want := protocol.Push{Topic: "inventory.updated", ID: "evt-1", Data: json.RawMessage(`{"item":"sword"}`)}
	n, err := h.g.Push(ctx, "alice", want)
	if n != 1 || err != nil {
		t.Fatalf("Push(alice) = %d, %v, want 1, nil", n, err)
	}
	f := c.read()
	if f.Opcode != protocol.OpPush || f.RequestID != 0 || f.IsResponse() {
		t.Fatalf("got opcode %v id %d flags %b, want a push with request id 0", f.Opcode, f.RequestID, f.Flags)
	}
	var got protocol.Push
	if err := json.Unmarshal(f.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.Topic != want.Topic || got.ID != want.ID || string(got.Data) != string(want.Data) {
		t.Errorf("got push %+v, want %+v", got, want)
	}

	if n, err := h.g.Push(ctx, "nobody", want); n != 0 || err != nil {
		t.Errorf("Push(nobody) = %d, %v, want 0, nil", n, err)
	}
	big := protocol.Push{Topic: "t", Data: json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)}
	if n, err := h.g.Push(ctx, "alice", big); n != 0 || apierr.CodeOf(err) != apierr.PayloadTooLarge {
		t.Errorf("Push(too large) = %d, %v, want 0 and payload_too_large", n, err)
	}
	if n, err := h.g.Push(ctx, "alice", protocol.Push{Topic: "t", Data: json.RawMessage(`{not json`)}); n != 0 || err == nil {
		t.Errorf("Push(invalid data) = %d, %v, want 0 and an error", n, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.g.Push(cancelled, "alice", want); !errors.Is(err, context.Canceled) {
		t.Errorf("Push(cancelled ctx) error = %v, want context.Canceled", err)
	}
	c.ping() // nothing else was queued to the client
	for result, want := range map[string]float64{pushDelivered: 1, pushNoSession: 1, pushTooLarge: 1, pushError: 1} {
		if got := counter(h.g.m.pushes.WithLabelValues(result)); got != want {
			t.Errorf("got pushes_total{%s} %v, want %v", result, got, want)
		}
	}
	if got := counter(h.g.m.framesOut.WithLabelValues("push")); got != 1 {
		t.Errorf("got frames_sent_total{push} %v, want 1", got)
	}
}

// TestSlowConsumer fills the queue of a client that never reads: it is
// dropped, memory stays bounded, and another session keeps working.
func TestSlowConsumer(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.OutboundQueue = 8 }, nil)
	slow := h.dial(t)
	slow.hello("good:slow")
	fast := h.dial(t)
	fast.hello("good:fast")

	data := json.RawMessage(`"` + strings.Repeat("p", 32<<10) + `"`)
	ctx := context.Background()
	dropped := false
	// Kernel socket buffers absorb a few MiB before the queue can fill.
	for i := 0; i < 20000 && !dropped; i++ {
		n, err := h.g.Push(ctx, "slow", protocol.Push{Topic: "flood", Data: data})
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		dropped = n == 0
	}
	if !dropped {
		t.Fatal("got every push delivered to a client that never reads, want it dropped as a slow consumer")
	}
	if got := counter(h.g.m.slowConsumers); got != 1 {
		t.Errorf("got slow_consumer_drops_total %v, want 1", got)
	}
	if got := counter(h.g.m.pushes.WithLabelValues(pushDropped)); got < 1 {
		t.Errorf("got pushes_total{dropped} %v, want at least 1", got)
	}
	if n, _ := h.g.Push(ctx, "slow", protocol.Push{Topic: "after"}); n != 0 {
		t.Errorf("got push to the dropped session delivered %d, want 0", n)
	}
	fast.ping()
	if n, err := h.g.Push(ctx, "fast", protocol.Push{Topic: "hello"}); n != 1 || err != nil {
		t.Errorf("Push(fast) = %d, %v, want 1, nil", n, err)
	}
	if f := fast.read(); f.Opcode != protocol.OpPush {
		t.Errorf("got opcode %v, want push", f.Opcode)
	}
	if got := h.g.Sessions(); got != 1 {
		t.Errorf("got %d sessions, want 1 (only the fast client)", got)
	}
	// The slow client finds the stream ended once it reads.
	for {
		_, err := slow.next()
		if err != nil {
			break
		}
	}
}

// TestWriteTimeoutDropsSession: a client that stops reading while its
// queue is still short is dropped once a write blocks past WriteTimeout.
func TestWriteTimeoutDropsSession(t *testing.T) {
	h := startGateway(t, func(c *Config) {
		c.MaxFrame = protocol.HardMaxFrame
		c.OutboundQueue = 100000 // never reached: the write deadline acts first
		c.WriteTimeout = 300 * time.Millisecond
	}, nil)
	slow := h.dial(t)
	slow.hello("good:slow")
	data := json.RawMessage(`"` + strings.Repeat("w", 256<<10) + `"`)
	dropped := false
	for deadline := time.Now().Add(waitLong); !dropped && time.Now().Before(deadline); {
		n, err := h.g.Push(context.Background(), "slow", protocol.Push{Topic: "flood", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		dropped = n == 0
		time.Sleep(10 * time.Millisecond) // pacing, so blocked frames pile up slowly
	}
	if !dropped {
		t.Fatal("got every push delivered to a client that never reads, want it dropped after the write timeout")
	}
	// The writer records the drop just after it marks the session closed,
	// which is what the last Push saw.
	eventually(t, "the drop to be counted", func() bool { return counter(h.g.m.slowConsumers) == 1 })
	eventually(t, "the session to leave", func() bool { return h.g.Sessions() == 0 })
}

func TestSessionReplaced(t *testing.T) {
	h := startGateway(t, nil, nil)
	first := h.dial(t)
	first.hello("good:alice")
	second := h.dial(t)
	w := second.hello("good:alice")

	f := first.read()
	var bye protocol.Bye
	if f.Opcode != protocol.OpBye || json.Unmarshal(f.Payload, &bye) != nil || bye.Reason != "session_replaced" {
		t.Fatalf("got opcode %v %s, want bye session_replaced", f.Opcode, f.Payload)
	}
	first.wantClosed()
	second.ping()
	if got := h.g.Sessions(); got != 1 {
		t.Errorf("got %d sessions, want 1", got)
	}
	if _, err := h.g.Push(context.Background(), "alice", protocol.Push{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	if f := second.read(); f.Opcode != protocol.OpPush {
		t.Errorf("got opcode %v on the new session %s, want the push", f.Opcode, w.SessionID)
	}
}

func TestDrain(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.DrainGrace = 300 * time.Millisecond }, nil)
	leaver := h.dial(t)
	wl := leaver.hello("good:leaver")
	stayer := h.dial(t)
	ws := stayer.hello("good:stayer")
	silent := h.dial(t) // never authenticates

	errc := make(chan error, 1)
	go func() {
		errc <- h.g.Drain(context.Background(), protocol.Reconnect{Reason: "drain", Cell: "other-cell", RetryAfterMS: 50})
	}()
	for _, tc := range []struct {
		c *client
		w protocol.Welcome
	}{{leaver, wl}, {stayer, ws}} {
		f := tc.c.read()
		var r protocol.Reconnect
		if f.Opcode != protocol.OpReconnect || json.Unmarshal(f.Payload, &r) != nil {
			t.Fatalf("got opcode %v %s, want reconnect", f.Opcode, f.Payload)
		}
		if r.Reason != "drain" || r.Cell != "other-cell" || r.RetryAfterMS != 50 {
			t.Errorf("got reconnect %+v, want the drain's reason, cell and retry", r)
		}
		prefix := "resume:" + tc.w.PlayerID + ":" + tc.w.SessionID + ":test-cell:"
		if !strings.HasPrefix(r.ResumeToken, prefix) || r.ResumeToken == tc.w.ResumeToken {
			t.Errorf("got resume token %q, want a fresh one for session %s", r.ResumeToken, tc.w.SessionID)
		}
	}
	leaver.nc.Close()

	// The listener is closed: new clients go elsewhere.
	eventually(t, "listener to close", func() bool {
		nc, err := net.DialTimeout("tcp", h.g.Addr().String(), time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})

	for _, c := range []*client{stayer, silent} {
		f := c.read()
		var bye protocol.Bye
		if f.Opcode != protocol.OpBye || json.Unmarshal(f.Payload, &bye) != nil || bye.Reason != "draining" {
			t.Fatalf("got opcode %v %s, want bye draining after the grace", f.Opcode, f.Payload)
		}
		c.wantClosed()
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Drain did not return")
	}
	// A client that left on its own may still be on its way out.
	eventually(t, "every session to leave", func() bool { return h.g.Sessions() == 0 })
	if got := counter(h.g.m.drains); got != 1 {
		t.Errorf("got drains_total %v, want 1", got)
	}
	if got := counter(h.g.m.framesOut.WithLabelValues("reconnect")); got != 2 {
		t.Errorf("got frames_sent_total{reconnect} %v, want 2", got)
	}
}

func TestDrainRefusesHello(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.DrainGrace = 5 * time.Second }, nil)
	c := h.dial(t)
	errc := make(chan error, 1)
	go func() { errc <- h.g.Drain(context.Background(), protocol.Reconnect{Reason: "drain"}) }()
	eventually(t, "drain to start", func() bool { return h.g.draining.Load() })
	id, f := c.request(protocol.OpHello, helloPayload("good:late"))
	wantError(t, f, apierr.Draining, id)
	c.wantClosed()
	// With everyone gone, Drain does not wait for the rest of the grace.
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Drain did not return once every client left")
	}
}

func TestStop(t *testing.T) {
	block := make(chan struct{})
	var handlerErr error
	var mu sync.Mutex
	handlers := protocol.Handlers{opBlock: func(ctx context.Context, _ protocol.Caller, _ []byte) ([]byte, error) {
		close(block)
		<-ctx.Done()
		mu.Lock()
		handlerErr = ctx.Err()
		mu.Unlock()
		return nil, ctx.Err()
	}}
	reg := prometheus.NewRegistry()
	g, err := New(Config{CellID: "test-cell", Listen: "127.0.0.1:0"}, Deps{Metrics: reg, Auth: fakeAuth{}, Handlers: handlers})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := g.Addr().String()
	authed := dialAddr(t, addr)
	authed.hello("good:alice")
	authed.write(protocol.Frame{Header: protocol.Header{Opcode: opBlock, RequestID: 7}})
	<-block
	anon := dialAddr(t, addr)
	eventually(t, "both connections to be accepted", func() bool {
		return counter(g.m.connections.WithLabelValues(connAccepted)) == 2
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, c := range []*client{authed, anon} {
		f := c.read()
		var bye protocol.Bye
		if f.Opcode != protocol.OpBye || json.Unmarshal(f.Payload, &bye) != nil || bye.Reason != "shutting_down" {
			t.Fatalf("got opcode %v %s, want bye shutting_down", f.Opcode, f.Payload)
		}
		c.wantClosed()
	}
	mu.Lock()
	if !errors.Is(handlerErr, context.Canceled) {
		t.Errorf("got handler context error %v, want context.Canceled", handlerErr)
	}
	mu.Unlock()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("dial after Stop succeeded, want the listener closed")
	}
	if got := g.Sessions(); got != 0 {
		t.Errorf("got %d sessions after Stop, want 0", got)
	}
	if got := counter(g.m.sessions); got != 0 {
		t.Errorf("got sessions gauge %v after Stop, want 0", got)
	}
}

func TestMaxSessions(t *testing.T) {
	h := startGateway(t, func(c *Config) { c.MaxSessions = 1 }, nil)
	first := h.dial(t)
	first.hello("good:alice")
	second := h.dial(t)
	wantError(t, second.read(), apierr.Unavailable, 0)
	second.wantClosed()
	first.ping()
	if got := counter(h.g.m.connections.WithLabelValues(connRejected)); got != 1 {
		t.Errorf("got connections_total{rejected_full} %v, want 1", got)
	}
	// The slot frees when the first client leaves.
	first.nc.Close()
	eventually(t, "first session to leave", func() bool { return h.g.Sessions() == 0 })
	h.dial(t).hello("good:bob")
}

func TestReusePort(t *testing.T) {
	a := startGateway(t, func(c *Config) { c.ReusePort = true }, nil)
	addr := a.g.Addr().String()
	b := startGateway(t, func(c *Config) { c.ReusePort = true; c.Listen = addr }, nil)
	if got := b.g.Addr().String(); got != addr {
		t.Fatalf("got second gateway on %s, want %s", got, addr)
	}
	// Without the option the port is taken.
	plain, err := New(Config{CellID: "c", Listen: addr}, Deps{Auth: fakeAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Start(context.Background()); err == nil {
		plain.Stop(context.Background())
		t.Fatal("Start without ReusePort on a shared port succeeded, want address in use")
	}

	const clients = 8
	for i := 0; i < clients; i++ {
		c := dialAddr(t, addr)
		c.hello("good:p" + string(rune('a'+i)))
	}
	if got := a.g.Sessions() + b.g.Sessions(); got != clients {
		t.Errorf("got %d+%d sessions, want %d across both gateways", a.g.Sessions(), b.g.Sessions(), clients)
	}
}

func TestHandlerPanicKeepsGateway(t *testing.T) {
	handlers := protocol.Handlers{opFail: func(context.Context, protocol.Caller, []byte) ([]byte, error) {
		var m map[string]int
		m["boom"]++ // nil map write
		return nil, nil
	}}
	h := startGateway(t, nil, handlers)
	bad := h.dial(t)
	bad.hello("good:bad")
	other := h.dial(t)
	other.hello("good:other")
	id, f := bad.request(opFail, "")
	wantError(t, f, apierr.Internal, id)
	bad.ping()
	other.ping()
}
