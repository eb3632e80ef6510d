package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"
)

// Transport opens the byte stream a simulated player speaks the game
// protocol over (docs/protocol.md): framed TCP to a gateway or an edge,
// and, once an edge serves them, a QUIC stream or a WebSocket carrying the
// same frames. The load tester knows TCP; other transports are handed to
// it by name (Config.Transports, WorkerOptions.Transports) and chosen by
// a scenario's connect.transport.
type Transport interface {
	// Dial connects to addr. local, when valid, is the source address to
	// bind: sharded runs spread sessions over 127.0.0.x because one source
	// address has only about 28,000 ports toward a destination.
	Dial(ctx context.Context, addr string, local netip.Addr) (net.Conn, error)
}

// TCP is the built-in transport: a plain TCP connection.
type TCP struct {
	// KeepAlive is the TCP keep-alive period; 0 uses Go's default (15 s),
	// negative turns keep-alives off. Heartbeats detect dead sessions
	// anyway, so benchmarks holding many idle sessions may turn it off.
	KeepAlive time.Duration
}

// Dial implements Transport.
func (t TCP) Dial(ctx context.Context, addr string, local netip.Addr) (net.Conn, error) {
	d := net.Dialer{KeepAlive: t.KeepAlive}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// transports returns the transports a process can dial: TCP and those
// given, which may replace TCP.
func transports(extra map[string]Transport) map[string]Transport {
	out := map[string]Transport{"tcp": TCP{}}
	for name, t := range extra {
		out[name] = t
	}
	return out
}

func transportFor(all map[string]Transport, name string) (Transport, error) {
	if t, ok := all[name]; ok {
		return t, nil
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("loadtest: the scenario's connect.transport %q is not available here (have: %v)", name, names)
}
