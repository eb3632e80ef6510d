package chaos

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
)

// edgeTransports are rotated over the bots that connect through an edge.
var edgeTransports = []string{world.AddrTCP, world.AddrQUIC, world.AddrWS}

// edgeRequestEvery paces the requests an edge bot keeps in flight during
// the drill, so the kill finds some of them on the wire.
const edgeRequestEvery = 20 * time.Millisecond

// edgeTarget is the world's edge as the bots reach it.
type edgeTarget struct {
	name  string
	addrs map[string]string // by transport
	tls   *tls.Config       // trusts the world's edge certificate (QUIC)
}

// worldEdge returns the first running edge of the world, nil when none runs.
func worldEdge(st *world.State) (*edgeTarget, error) {
	for _, p := range st.ByRole(world.RoleEdge) {
		if !world.Alive(p) {
			continue
		}
		t := &edgeTarget{name: p.Name, addrs: p.Addrs}
		if st.EdgeCertFile != "" {
			pem, err := os.ReadFile(st.EdgeCertFile)
			if err != nil {
				return nil, fmt.Errorf("chaos: the edge certificate: %w", err)
			}
			host, _, _ := net.SplitHostPort(p.Addrs[world.AddrQUIC])
			if t.tls, err = transport.ClientTLS(pem, host); err != nil {
				return nil, fmt.Errorf("chaos: the edge certificate: %w", err)
			}
		}
		return t, nil
	}
	return nil, nil
}

// dial connects through the edge over tr.
func (t *edgeTarget) dial(ctx context.Context, tr string, o gameclient.Options) (*gameclient.Conn, error) {
	addr := t.addrs[tr]
	if addr == "" {
		return nil, fmt.Errorf("the edge %s has no %s listener", t.name, tr)
	}
	var (
		nc  net.Conn
		err error
	)
	switch tr {
	case world.AddrTCP:
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	case world.AddrQUIC:
		if t.tls == nil {
			return nil, fmt.Errorf("the world records no edge certificate to trust for QUIC")
		}
		nc, err = transport.DialQUIC(ctx, addr, t.tls)
	case world.AddrWS:
		nc, err = transport.DialWS(ctx, "ws://"+addr+transport.WSPath, nil)
	default:
		return nil, fmt.Errorf("unknown edge transport %q", tr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the edge over %s: %w", tr, err)
	}
	return gameclient.NewConn(ctx, nc, o)
}

// watchEdge follows a bot connected through the edge. Its connection must
// never close; when its cell dies, the edge moves the session and says so
// with a session.moved push, and the bot counts as recovered once the
// session answers on the new cell. Meanwhile the bot keeps requests in
// flight: only retryable errors may fail them.
func (e *botEnv) watchEdge(ctx context.Context, b *bot, failover string, kill *killClock, stop <-chan struct{}) {
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		e.keepBusy(b, stop)
	}()
	defer func() { <-reqDone }()
	moved := false
	for {
		select {
		case <-stop:
			return
		case <-b.conn.Done():
			b.mu.Lock()
			if at, ok := kill.when(); ok {
				b.res.DisconnectedMS = msPtr(time.Since(at))
			}
			b.res.Error = fmt.Sprintf("the edge closed the player's connection: %v", b.conn.Err())
			b.mu.Unlock()
			return
		case p := <-b.conn.Pushes():
			if p.Topic != protocol.TopicSessionMoved || moved {
				continue
			}
			moved = true
			e.edgeMoved(ctx, b, p, failover, kill)
		}
	}
}

// edgeMoved records a session.moved push.
func (e *botEnv) edgeMoved(ctx context.Context, b *bot, p protocol.Push, failover string, kill *killClock) {
	var m protocol.SessionMoved
	_ = json.Unmarshal(p.Data, &m)
	killAt, killed := kill.when()
	if !killed || !b.affected {
		b.mu.Lock()
		b.res.Error = fmt.Sprintf("session moved to %s (%s) though its cell was not killed", m.Cell, m.Reason)
		b.mu.Unlock()
		return
	}
	// Recovered means answering on the new cell, not only told so.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := b.conn.Ping(pctx)
	cancel()
	at := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.res.Error = fmt.Sprintf("moved to %s but the session does not answer: %v", m.Cell, err)
		return
	}
	b.res.RecoveredMS = msPtr(at.Sub(killAt))
	b.res.RecoveredCell = m.Cell
	b.res.Placement = "edge:" + m.Reason
	b.res.Resumed = true
}

// keepBusy sends an echo every edgeRequestEvery until stop, counting the
// requests the move interrupted; a non-retryable failure is an error.
func (e *botEnv) keepBusy(b *bot, stop <-chan struct{}) {
	t := time.NewTicker(edgeRequestEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-b.conn.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := b.conn.Request(ctx, protocol.OpEcho, []byte(`"chaos"`))
		cancel()
		if err == nil {
			continue
		}
		code := apierr.CodeOf(err)
		b.mu.Lock()
		switch {
		case code.Retryable():
			b.res.Interrupted++
		case b.res.Error == "":
			b.res.Error = fmt.Sprintf("a request failed with %s, which is not retryable: %v", code, err)
		}
		b.mu.Unlock()
	}
}
