package edge_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/edge"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
)

// benchPayload is a typical small request.
var benchPayload = []byte(`{"sku":"skin.crimson","qty":1,"idempotency_key":"0123456789abcdef"}`)

// benchPlayers numbers benchmark players: each needs its own id, or the
// gateway replaces one session with the next.
var benchPlayers atomic.Int64

// benchConn connects one player: straight to cell b's gateway ("direct"),
// or through the edge over a transport.
func benchConn(b *testing.B, r *rig, via string, n int) *gameclient.Conn {
	b.Helper()
	tok := r.player(fmt.Sprintf("bench-%s-%d-%d", via, n, benchPlayers.Add(1)), "b")
	o := gameclient.Options{Token: tok, Heartbeat: -1}
	var (
		c   *gameclient.Conn
		err error
	)
	if via == "direct" {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		c, err = gameclient.Dial(ctx, r.cell["b"].gw.Addr().String(), o)
	} else {
		c, err = r.tryDial(via, o)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkRoundTrip is one player's request/response latency: straight to
// a gateway, and through an edge over each transport. The difference is
// what the relay costs a player (loopback, so no network time).
func BenchmarkRoundTrip(b *testing.B) {
	r := newRig(b, rigOptions{})
	for _, via := range []string{"direct", edge.TransportTCP, edge.TransportQUIC, edge.TransportWS} {
		b.Run(via, func(b *testing.B) {
			c := benchConn(b, r, via, 0)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Request(ctx, protocol.OpEcho, benchPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThroughput is requests per second through one edge (and, for
// comparison, straight to the gateway) with many players each keeping
// several requests in flight. Every request is two frames relayed.
func BenchmarkThroughput(b *testing.B) {
	const players, inflight = 64, 4
	r := newRig(b, rigOptions{})
	for _, via := range []string{"direct", edge.TransportTCP, edge.TransportWS} {
		b.Run(via, func(b *testing.B) {
			conns := make([]*gameclient.Conn, players)
			for i := range conns {
				conns[i] = benchConn(b, r, via, i)
			}
			var left atomic.Int64
			left.Store(int64(b.N))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, c := range conns {
				for range inflight {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, err := c.Request(ctx, protocol.OpEcho, benchPayload); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
			}
			wg.Wait()
			secs := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/secs, "req/s")
			if via != "direct" {
				b.ReportMetric(2*float64(b.N)/secs, "frames/s")
			}
		})
	}
}
