package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/protocol"
)

// BenchmarkEchoRoundTrip measures one client's request/response round trip
// through the gateway over loopback: decode, dispatch, queue, write.
func BenchmarkEchoRoundTrip(b *testing.B) {
	h := startGateway(b, func(c *Config) { c.RateLimit = -1 }, nil)
	c := h.dial(b)
	c.hello("good:bench")
	req := protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, RequestID: 1},
		Payload: []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 40) + `"}`)})
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Minute))
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := c.nc.Write(req); err != nil {
			b.Fatal(err)
		}
		f, err := c.r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if f.Opcode != protocol.OpEcho {
			b.Fatalf("got opcode %v, want echo", f.Opcode)
		}
	}
}

// BenchmarkPush measures server-to-client pushes to one session, counted
// when the client has read them.
func BenchmarkPush(b *testing.B) {
	h := startGateway(b, func(c *Config) { c.OutboundQueue = 1 << 16 }, nil)
	c := h.dial(b)
	c.hello("good:bench")
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Minute))
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			f, err := c.r.Next()
			if err != nil {
				done <- err
				return
			}
			if f.Opcode == protocol.OpPush {
				got.Add(1)
			}
		}
	}()
	p := protocol.Push{Topic: "inventory.updated", ID: "evt", Data: json.RawMessage(`{"item":"sword","qty":1}`)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if d, err := h.g.Push(ctx, "bench", p); d != 1 || err != nil {
			b.Fatalf("Push = %d, %v, want 1, nil", d, err)
		}
	}
	// Timed too: a push counts once the client has it.
	for n := int64(b.N); got.Load() < n; {
		select {
		case err := <-done:
			b.Fatalf("client stopped after %d of %d pushes: %v", got.Load(), n, err)
		case <-time.After(time.Millisecond):
		}
	}
}
