package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// Config holds an edge's knobs. Zero values take the documented defaults.
type Config struct {
	ID string // this edge's id in cells.yaml: names it to gateways and in logs; required

	// Player listeners; at least one. QUIC needs TLS.
	TCPListen  string // host:port
	QUICListen string // host:port (UDP)
	WSListen   string // host:port; sessions at transport.WSPath
	TLS        *tls.Config
	WSTLS      bool // serve WebSocket over TLS (wss) with TLS

	AuthTimeout   time.Duration // the player's Hello must arrive within it; default 5s
	MaxFrame      int           // largest frame accepted from players; default protocol.DefaultMaxFrame
	OutboundQueue int           // frames queued per player before it counts as a slow consumer; default 256
	PendingFrames int           // player frames held while a session (re)attaches; default 64
	WriteTimeout  time.Duration // one write to a player, and to a backbone link; default 10s
	MaxSessions   int           // player connections; 0 = unlimited

	// AttachTimeout is how long a session whose cell failed may look for
	// another before the player is told to reconnect; default 30s.
	AttachTimeout time.Duration
	// HelloTimeout bounds one gateway's answer to a (re-)attaching Hello;
	// default 5s.
	HelloTimeout time.Duration
	// RetireGrace is how long a session moved on a gateway's Reconnect
	// keeps its old attachment for the answers still owed; default 5s.
	RetireGrace time.Duration
	DrainGrace  time.Duration // players get this long to leave on Drain; default 10s

	// Backbone links: DialTimeout bounds one dial and handshake (a dead
	// cell must fail fast: default 2s); Keepalive and DeadAfter are the
	// link's heartbeat (defaults 1s and 3s).
	DialTimeout time.Duration
	Keepalive   time.Duration
	DeadAfter   time.Duration
}

// Defaults, exported through Config's documentation.
const (
	defaultAuthTimeout   = 5 * time.Second
	defaultOutboundQueue = 256
	defaultPendingFrames = 64
	defaultWriteTimeout  = 10 * time.Second
	defaultAttachTimeout = 30 * time.Second
	defaultHelloTimeout  = 5 * time.Second
	defaultRetireGrace   = 5 * time.Second
	defaultDrainGrace    = 10 * time.Second
	defaultDialTimeout   = 2 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	if c.ID == "" {
		return c, errors.New("edge: config: ID is required")
	}
	if c.TCPListen == "" && c.QUICListen == "" && c.WSListen == "" {
		return c, errors.New("edge: config: at least one of TCPListen, QUICListen, WSListen is required")
	}
	if (c.QUICListen != "" || c.WSTLS) && c.TLS == nil {
		return c, errors.New("edge: config: QUIC and wss need TLS")
	}
	if c.MaxSessions < 0 {
		return c, errors.New("edge: config: MaxSessions is negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, defaultAuthTimeout)
	def(&c.WriteTimeout, defaultWriteTimeout)
	def(&c.AttachTimeout, defaultAttachTimeout)
	def(&c.HelloTimeout, defaultHelloTimeout)
	def(&c.RetireGrace, defaultRetireGrace)
	def(&c.DrainGrace, defaultDrainGrace)
	def(&c.DialTimeout, defaultDialTimeout)
	c.MaxFrame = protocol.ClampMaxFrame(c.MaxFrame)
	if c.OutboundQueue <= 0 {
		c.OutboundQueue = defaultOutboundQueue
	}
	if c.PendingFrames <= 0 {
		c.PendingFrames = defaultPendingFrames
	}
	return c, nil
}

// Deps are an edge's collaborators.
type Deps struct {
	Logger  *slog.Logger          // nil discards
	Metrics prometheus.Registerer // nil keeps metrics in a private registry
	// Cells is cells.yaml: each cell's backbone address and failover
	// order. Required.
	Cells *config.Cells
	// Tokens verifies players' access and resume tokens offline; required.
	Tokens TokenVerifier
	// Credential returns the server token (scope backbone.Scope) the edge
	// presents to gateways; it is asked again for every new link, so a
	// minting implementation keeps it fresh. Required.
	Credential func(ctx context.Context) (string, error)
	// Homes answers a player's current home cell (the global router); nil
	// trusts the cell named in the player's token.
	Homes HomeResolver
}

// TokenVerifier checks a token for an audience, offline (*token.Verifier).
type TokenVerifier interface {
	Verify(tok, audience string) (token.Claims, error)
}

// HomeResolver answers where a player is served now: its home cell, or
// that cell's failover while it is down.
type HomeResolver interface {
	Home(ctx context.Context, playerID string) (string, error)
}
