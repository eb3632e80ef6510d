package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"time"

	edgetransport "github.com/livecell/livecell/edge/transport"
)

// Transport opens the byte stream a simulated player speaks the game
// protocol over (docs/protocol.md): framed TCP to a gateway or an edge, a
// QUIC stream or a WebSocket carrying the same frames to an edge. The load
// tester has "tcp", "quic" and "ws"; others are handed to it by name
// (Config.Transports, WorkerOptions.Transports) and chosen by a scenario's
// connect.transport.
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

// QUIC dials an edge's QUIC listener (edge/transport: one bidirectional
// stream, TLS 1.3, ALPN livecell/1). Each session is its own QUIC
// connection on its own UDP socket, bound by the system: the local address
// is not applied.
type QUIC struct {
	// CAPEM holds the certificates to trust: an edge's self-signed
	// certificate (the world's edge-cert.pem).
	CAPEM []byte
}

// Dial implements Transport.
func (q QUIC) Dial(ctx context.Context, addr string, _ netip.Addr) (net.Conn, error) {
	if len(q.CAPEM) == 0 {
		return nil, errors.New("loadtest: quic: no edge certificate to trust (Target.EdgeCertFile, --edge-cert)")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tc, err := edgetransport.ClientTLS(q.CAPEM, host)
	if err != nil {
		return nil, err
	}
	return edgetransport.DialQUIC(ctx, addr, tc)
}

// WebSocket dials an edge's WebSocket listener (each binary message one
// frame) at edgetransport.WSPath: ws://, or wss:// trusting CAPEM when set.
// The local address is not applied.
type WebSocket struct {
	CAPEM []byte
}

// Dial implements Transport.
func (w WebSocket) Dial(ctx context.Context, addr string, _ netip.Addr) (net.Conn, error) {
	if len(w.CAPEM) == 0 {
		return edgetransport.DialWS(ctx, "ws://"+addr+edgetransport.WSPath, nil)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tc, err := edgetransport.ClientTLS(w.CAPEM, host)
	if err != nil {
		return nil, err
	}
	tc.NextProtos = nil // ALPN is QUIC's; a WebSocket upgrade negotiates HTTP/1.1
	return edgetransport.DialWS(ctx, "wss://"+addr+edgetransport.WSPath, tc)
}

// transports returns the transports a process can dial: TCP, QUIC and
// WebSocket (trusting the target's edge certificate) and those given,
// which may replace them.
func transports(extra map[string]Transport, t Target) (map[string]Transport, error) {
	var ca []byte
	if t.EdgeCertFile != "" {
		var err error
		if ca, err = os.ReadFile(t.EdgeCertFile); err != nil {
			return nil, fmt.Errorf("loadtest: the edge certificate: %w", err)
		}
	}
	out := map[string]Transport{"tcp": TCP{}, "quic": QUIC{CAPEM: ca}, "ws": WebSocket{}}
	for name, tr := range extra {
		out[name] = tr
	}
	return out, nil
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
