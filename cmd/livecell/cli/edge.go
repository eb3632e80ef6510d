package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/edge"
	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/internal/token"
)

// defaultEdgeMetrics is where an edge serves /metrics, /healthz and
// /v1/status unless told otherwise.
const defaultEdgeMetrics = "127.0.0.1:4199"

// edgeFlags configure `livecell edge`.
type edgeFlags struct {
	id            string
	tcp, quic, ws string
	wsTLS         bool
	certFile      string
	keyFile       string
	routers       string
	metrics       string
	maxSessions   int
	authTimeout   time.Duration
	attachTimeout time.Duration
	drainGrace    time.Duration
}

func newEdgeCmd(g *globals) *cobra.Command {
	f := &edgeFlags{}
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run an edge relay: players over TCP, QUIC and WebSocket, relayed to their cell's gateway",
		Long: `Edge runs one edge relay of cells.yaml (--edge): it accepts player sessions
over TCP, QUIC and WebSocket (path ` + transport.WSPath + `, one frame per binary message),
checks each player's Hello offline against the public keys before relaying a
byte, and relays the session to its cell's gateway over one backbone link per
cell. When a cell dies, or its gateway drains, the edge moves its sessions to
the failover cell of cells.yaml with their resume tokens while the players'
connections stay open (docs/protocol.md, "Edge backbone").

Keys come from LIVECELL_SIGNING_KEY_FILE or LIVECELL_JWKS_FILE. The edge
authenticates to gateways with a server credential granting scope "` + backbone.Scope + `":
LIVECELL_SERVER_TOKEN (livecell keys server-token --subject edge/<id> --scope ` + backbone.Scope + `),
or one it mints itself when it holds the signing key.

QUIC needs a certificate (--tls-cert/--tls-key, env LIVECELL_EDGE_TLS_CERT_FILE
and LIVECELL_EDGE_TLS_KEY_FILE); without one the edge makes a self-signed
certificate at start and logs its SHA-256 fingerprint for clients to pin.

/metrics, /healthz and /v1/status (links to cells, sessions) are served on
--metrics-listen. On SIGTERM the edge tells every player to reconnect, with
its resume token, and closes after --drain-grace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runEdge(cmd.Context(), g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "edge", env("LIVECELL_EDGE", ""), "id of this edge in cells.yaml (env LIVECELL_EDGE; required)")
	fl.StringVar(&f.tcp, "tcp-listen", "", "override the edge's tcp address from cells.yaml")
	fl.StringVar(&f.quic, "quic-listen", "", "override the edge's quic address (UDP) from cells.yaml")
	fl.StringVar(&f.ws, "ws-listen", "", "override the edge's ws address from cells.yaml")
	fl.BoolVar(&f.wsTLS, "ws-tls", false, "serve WebSocket over TLS (wss) with the edge's certificate")
	fl.StringVar(&f.certFile, "tls-cert", env("LIVECELL_EDGE_TLS_CERT_FILE", ""), "PEM certificate for QUIC (and wss) (env LIVECELL_EDGE_TLS_CERT_FILE); empty: self-signed")
	fl.StringVar(&f.keyFile, "tls-key", env("LIVECELL_EDGE_TLS_KEY_FILE", ""), "PEM key of --tls-cert (env LIVECELL_EDGE_TLS_KEY_FILE)")
	fl.StringVar(&f.routers, "router", env("LIVECELL_ROUTER_URL", ""), "comma-separated router base URLs to resolve players' cells (env LIVECELL_ROUTER_URL; default: router.listen of cells.yaml; \"none\": trust the token's cell)")
	fl.StringVar(&f.metrics, "metrics-listen", defaultEdgeMetrics, "address of /metrics, /healthz and /v1/status")
	fl.IntVar(&f.maxSessions, "max-sessions", 0, "refuse player connections beyond this many (0: no limit)")
	fl.DurationVar(&f.authTimeout, "auth-timeout", 5*time.Second, "a player's Hello must arrive within this")
	fl.DurationVar(&f.attachTimeout, "attach-timeout", 30*time.Second, "how long a session whose cell failed may look for another before the player is told to reconnect")
	fl.DurationVar(&f.drainGrace, "drain-grace", 10*time.Second, "on SIGTERM, how long players get to reconnect elsewhere")
	return cmd
}

func runEdge(ctx context.Context, g *globals, f *edgeFlags) error {
	p, err := g.process(ctx, "livecell-edge")
	if err != nil {
		return err
	}
	defer p.shutdown(context.Background())
	log, cells := p.log, p.cells
	cfg, err := f.config(cells)
	if err != nil {
		return err
	}
	keys, err := loadKeys(log, false)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	cred, err := edgeCredential(keys, cfg.ID)
	if err != nil {
		return err
	}
	cert, err := edgeCertificate(f, cfg)
	if err != nil {
		return err
	}
	if f.certFile == "" {
		log.Warn("edge: serving QUIC with a self-signed certificate; clients must pin it", "sha256", transport.Fingerprint(cert))
	}
	cfg.TLS = transport.ServerTLS(cert)
	deps := edge.Deps{Logger: log, Cells: cells, Tokens: token.NewVerifier(keys, nil), Credential: cred}
	if urls := f.routerURLs(cells); len(urls) > 0 {
		deps.Homes = &edge.Router{URLs: urls, HTTP: &http.Client{Timeout: time.Second}}
	}
	reg := telemetry.NewRegistry("edge")
	deps.Metrics = reg
	e, err := edge.New(cfg, deps)
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, e.Status())
	})
	srv, err := serveHTTP(f.metrics, withMetrics(reg, mux))
	if err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return errors.Join(fmt.Errorf("edge: metrics listen: %w", err), e.Stop(stopCtx))
	}
	log.Info("edge up", "edge", cfg.ID, "listen", e.Addrs(), "metrics", srv.addr(), "routers", f.routerURLs(cells))
	<-ctx.Done()
	log.Info("edge draining", "grace", f.drainGrace)
	stopCtx, cancel := context.WithTimeout(context.Background(), f.drainGrace+10*time.Second)
	defer cancel()
	if err := e.Drain(stopCtx); err != nil {
		log.Warn("edge drain", "error", err)
	}
	err = e.Stop(stopCtx)
	return errors.Join(err, srv.shutdown(stopCtx))
}

// config builds the edge's Config from its cells.yaml entry and the flags.
func (f *edgeFlags) config(cells *config.Cells) (edge.Config, error) {
	if f.id == "" {
		return edge.Config{}, fmt.Errorf("--edge is required (edges in cells.yaml: %v)", edgeIDs(cells))
	}
	var entry config.Edge
	found := false
	for _, c := range cells.Cells {
		for _, e := range c.Edges {
			if e.ID == f.id {
				entry, found = e, true
			}
		}
	}
	if !found && f.tcp == "" && f.quic == "" && f.ws == "" {
		return edge.Config{}, fmt.Errorf("--edge %q is not in cells.yaml (edges: %v); add it there or give its addresses with --tcp-listen/--quic-listen/--ws-listen", f.id, edgeIDs(cells))
	}
	return edge.Config{
		ID:            f.id,
		TCPListen:     firstNonEmpty(f.tcp, entry.TCP),
		QUICListen:    firstNonEmpty(f.quic, entry.QUIC),
		WSListen:      firstNonEmpty(f.ws, entry.WS),
		WSTLS:         f.wsTLS,
		MaxSessions:   f.maxSessions,
		AuthTimeout:   f.authTimeout,
		AttachTimeout: f.attachTimeout,
		DrainGrace:    f.drainGrace,
	}, nil
}

func edgeIDs(cells *config.Cells) []string {
	var out []string
	for _, c := range cells.Cells {
		for _, e := range c.Edges {
			out = append(out, e.ID)
		}
	}
	return out
}

// routerURLs are the routers the edge asks; none when told "none".
func (f *edgeFlags) routerURLs(cells *config.Cells) []string {
	switch f.routers {
	case "none":
		return nil
	case "":
		if cells.Router.Listen == "" {
			return nil
		}
		return []string{"http://" + cells.Router.Listen}
	}
	var out []string
	for _, u := range strings.Split(f.routers, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// edgeCredential is the server token the edge links to gateways with.
func edgeCredential(keys *token.KeySet, id string) (func(context.Context) (string, error), error) {
	if static := env("LIVECELL_SERVER_TOKEN", ""); static != "" {
		return func(context.Context) (string, error) { return static, nil }, nil
	}
	if !keys.CanSign() {
		return nil, fmt.Errorf("edge: no credential for the backbone: set LIVECELL_SERVER_TOKEN (livecell keys server-token --subject edge/%s --scope %s) or give the edge the signing key", id, backbone.Scope)
	}
	signer, err := token.NewSigner(keys, nil)
	if err != nil {
		return nil, err
	}
	return (&mintedToken{signer: signer, subject: "edge/" + id, scopes: []string{backbone.Scope}, ttl: time.Hour}).Token, nil
}

// edgeCertificate loads --tls-cert/--tls-key, or makes a self-signed
// certificate for the hosts the edge listens on.
func edgeCertificate(f *edgeFlags, cfg edge.Config) (tls.Certificate, error) {
	if f.certFile != "" || f.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("edge: --tls-cert/--tls-key: %w", err)
		}
		return cert, nil
	}
	hosts := []string{"localhost"}
	for _, a := range []string{cfg.QUICListen, cfg.WSListen, cfg.TCPListen} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	certPEM, keyPEM, err := transport.GenerateCert(hosts, 90*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
