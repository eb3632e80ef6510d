package edge_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/edge"
	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/gateway"
	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// waitLong bounds every wait: a loaded 2-core machine under -race can
// stall, and waits end as soon as their condition holds.
const waitLong = 15 * time.Second

// Test opcodes answered by the cells' gateways.
const (
	opWhere protocol.Opcode = 0x7f01 // answers the cell serving the session
	opSlow  protocol.Opcode = 0x7f02 // answers when released (or never)
)

// cellRig is one cell's gateway; its backbone is reached through a proxy
// the test can cut, which is how a cell dies as seen from an edge.
type cellRig struct {
	id      string
	gw      *gateway.Gateway
	reg     *prometheus.Registry
	proxy   *cutProxy
	slowIn  chan struct{} // a slow request reached the handler
	release chan struct{} // closed: slow requests answer
}

type rig struct {
	t        testing.TB
	keys     *token.KeySet
	signer   *token.Signer
	verifier *token.Verifier
	cells    *config.Cells
	cell     map[string]*cellRig
	edge     *edge.Edge
	reg      *prometheus.Registry
	certPEM  []byte
}

type rigOptions struct {
	resumeTTL time.Duration
	edgeCfg   func(*edge.Config)
	// backbones replaces a cell's backbone address (tests that stand in
	// for the gateway).
	backbones map[string]string
}

// newRig runs cells a and b (each the other's failover) and an edge in
// front of them, on loopback.
func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ks, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.resumeTTL == 0 {
		o.resumeTTL = 10 * time.Minute
	}
	r := &rig{t: t, keys: ks, signer: signer, verifier: token.NewVerifier(ks, nil), cell: map[string]*cellRig{}, reg: prometheus.NewRegistry()}
	r.cells = &config.Cells{Version: 1}
	for _, c := range []struct{ id, failover string }{{"a", "b"}, {"b", "a"}} {
		cr := r.startCell(c.id, c.failover, o.resumeTTL)
		backbone := cr.proxy.addr()
		if addr, ok := o.backbones[c.id]; ok {
			backbone = addr
		}
		r.cells.Cells = append(r.cells.Cells, config.Cell{
			ID: c.id, Region: "r-" + c.id, Gateway: cr.gw.Addr().String(), API: "127.0.0.1:1",
			Backbone: backbone, Capacity: 1000, Failover: []string{c.failover}, State: config.StateActive,
		})
	}
	certPEM, keyPEM, err := transport.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r.certPEM = certPEM
	cfg := edge.Config{
		ID: "e1", TCPListen: "127.0.0.1:0", QUICListen: "127.0.0.1:0", WSListen: "127.0.0.1:0",
		TLS: transport.ServerTLS(cert), AttachTimeout: 5 * time.Second, DrainGrace: time.Second,
	}
	if o.edgeCfg != nil {
		o.edgeCfg(&cfg)
	}
	e, err := edge.New(cfg, edge.Deps{
		Logger:  testLogger(t),
		Metrics: r.reg, Cells: r.cells, Tokens: r.verifier,
		Credential: func(context.Context) (string, error) {
			tok, _, err := signer.IssueServer("edge/e1", []string{backbone.Scope}, time.Hour)
			return tok, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.edge = e
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("edge Stop: %v", err)
		}
	})
	return r
}

func (r *rig) startCell(id, failover string, resumeTTL time.Duration) *cellRig {
	t := r.t
	cr := &cellRig{id: id, reg: prometheus.NewRegistry(), slowIn: make(chan struct{}, 16), release: make(chan struct{})}
	handlers := protocol.Handlers{
		opWhere: func(_ context.Context, c protocol.Caller, _ []byte) ([]byte, error) {
			return []byte(`"` + c.Cell + `"`), nil
		},
		opSlow: func(ctx context.Context, _ protocol.Caller, _ []byte) ([]byte, error) {
			cr.slowIn <- struct{}{}
			select {
			case <-cr.release:
				return []byte(`"done"`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
	g, err := gateway.New(gateway.Config{
		CellID: id, Listen: "127.0.0.1:0", BackboneListen: "127.0.0.1:0", DrainGrace: time.Second, RequestTimeout: waitLong,
		RateLimit: -1, // benchmarks send far more than a player's budget
	}, gateway.Deps{
		Metrics: cr.reg, Handlers: handlers,
		Auth:   tokenAuth{cell: id, failoverFor: []string{failover}, v: r.verifier},
		Resume: resumeIssuer{r.signer, resumeTTL},
		Edges:  edgeAuth{r.verifier},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cr.gw = g
	cr.proxy = newProxy(t, g.BackboneAddr().String())
	t.Cleanup(func() {
		select {
		case <-cr.release:
		default:
			close(cr.release)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_ = g.Stop(ctx)
	})
	r.cell[id] = cr
	return cr
}

// testLogger writes the edge's log to the test's log when -v asks.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// player returns an access token for a new player homed to cell.
func (r *rig) player(name, cell string) string {
	tok, _, err := r.signer.IssuePlayer(name, cell, time.Hour)
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// dial connects through the edge over tr and authenticates with tok.
func (r *rig) dial(tr, tok string) *gameclient.Conn {
	r.t.Helper()
	c, err := r.tryDial(tr, gameclient.Options{Token: tok, Client: "edge-test", Heartbeat: -1})
	if err != nil {
		r.t.Fatalf("dial the edge over %s: %v", tr, err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

func (r *rig) tryDial(tr string, o gameclient.Options) (*gameclient.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	nc, err := r.rawDial(ctx, tr)
	if err != nil {
		return nil, err
	}
	return gameclient.NewConn(ctx, nc, o)
}

func (r *rig) rawDial(ctx context.Context, tr string) (net.Conn, error) {
	addr := r.edge.Addrs()[tr]
	switch tr {
	case edge.TransportTCP:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	case edge.TransportQUIC:
		tc, err := transport.ClientTLS(r.certPEM, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		return transport.DialQUIC(ctx, addr, tc)
	case edge.TransportWS:
		return transport.DialWS(ctx, "ws://"+addr+transport.WSPath, nil)
	}
	return nil, errors.New("unknown transport " + tr)
}

// where asks the gateway serving c which cell it is.
func where(t *testing.T, c *gameclient.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	b, err := c.Request(ctx, opWhere, nil)
	if err != nil {
		t.Fatalf("where: %v", err)
	}
	return string(b[1 : len(b)-1])
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tokenAuth is the cells' player authenticator, as cell/auth.go wires it.
type tokenAuth struct {
	cell        string
	failoverFor []string
	v           *token.Verifier
}

func (a tokenAuth) Authenticate(_ context.Context, h protocol.Hello) (gateway.Identity, error) {
	var (
		c   token.Claims
		err error
	)
	switch {
	case h.Token != "":
		c, err = a.v.Verify(h.Token, token.AudiencePlayer)
	case h.ResumeToken != "":
		c, err = a.v.Verify(h.ResumeToken, token.AudienceResume)
	default:
		return gateway.Identity{}, apierr.New(apierr.Unauthenticated, "no token")
	}
	if err != nil {
		return gateway.Identity{}, err
	}
	if c.Cell != a.cell && !slices.Contains(a.failoverFor, c.Cell) {
		return gateway.Identity{}, apierr.New(apierr.PermissionDenied, "homed to %s", c.Cell)
	}
	return gateway.Identity{PlayerID: c.Subject, HomeCell: c.Cell, ExpiresAt: c.ExpiresAt}, nil
}

type resumeIssuer struct {
	s   *token.Signer
	ttl time.Duration
}

func (r resumeIssuer) IssueResume(player, session, cell string) (string, error) {
	tok, _, err := r.s.IssueResume(player, session, cell, r.ttl)
	return tok, err
}

type edgeAuth struct{ v *token.Verifier }

func (a edgeAuth) AuthenticateEdge(_ context.Context, tok string) (string, error) {
	c, err := a.v.Verify(tok, token.AudienceServer)
	if err != nil {
		return "", err
	}
	if !c.HasScope(backbone.Scope) {
		return "", apierr.New(apierr.PermissionDenied, "no edge scope")
	}
	return c.Subject, nil
}

// cutProxy forwards TCP to a target until cut: then its listener and every
// connection close at once, the way a killed host's sockets vanish.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// Cut kills every connection through the proxy and refuses new ones.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as from a dead process
		}
		c.Close()
	}
}
