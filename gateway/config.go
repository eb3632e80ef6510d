package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/protocol"
)

// Config holds a gateway's knobs. Zero values take the documented defaults.
type Config struct {
	CellID    string // announced in Welcome and passed to handlers as Caller.Cell; required
	Listen    string // host:port; required (":0" picks a free port)
	ReusePort bool   // SO_REUSEPORT, so several gateway processes share Listen
	Engine    string // EngineEpoll (default on Linux) or EngineGoroutine
	Loops     int    // event loops of the epoll engine; default GOMAXPROCS

	AuthTimeout       time.Duration // first frame deadline; default 5s
	HeartbeatInterval time.Duration // announced in Welcome; default 15s
	IdleTimeout       time.Duration // silence that closes a session; default 3×HeartbeatInterval
	MaxFrame          int           // largest frame accepted and sent; default protocol.DefaultMaxFrame
	OutboundQueue     int           // frames queued per session before it counts as a slow consumer; default 256
	RateLimit         float64       // requests per second per session (pings exempt); default 50, negative disables
	RateBurst         int           // token bucket depth; default 100
	MaxInFlight       int           // concurrent handler requests per session; default 32
	RequestTimeout    time.Duration // handler deadline; default 10s
	WriteTimeout      time.Duration // one socket write; default 10s
	DrainGrace        time.Duration // time clients get to leave after a Reconnect; default 10s
	MaxSessions       int           // open connections (authenticated or not); 0 = unlimited

	// BackboneListen is where edge relays connect (host:port), each with one
	// link carrying many player sessions (package backbone); empty: no edge
	// can reach this gateway. Sessions arriving over a link are served
	// exactly like TCP ones and count against MaxSessions.
	BackboneListen string
	// BackboneIdleTimeout closes a link silent for this long; default 30s.
	BackboneIdleTimeout time.Duration
}

// Connection engines (Config.Engine).
const (
	// EngineEpoll runs every connection on a few epoll event loops: no
	// goroutine or buffer per idle session. Linux only.
	EngineEpoll = "epoll"
	// EngineGoroutine runs a reader and a writer goroutine per connection.
	EngineGoroutine = "goroutine"
)

// DefaultEngine is the engine a Config without one gets: epoll where the
// platform has it.
func DefaultEngine() string {
	if epollAvailable {
		return EngineEpoll
	}
	return EngineGoroutine
}

// Defaults, exported through Config's documentation.
const (
	defaultAuthTimeout    = 5 * time.Second
	defaultHeartbeat      = 15 * time.Second
	defaultOutboundQueue  = 256
	defaultRateLimit      = 50
	defaultRateBurst      = 100
	defaultMaxInFlight    = 32
	defaultRequestTimeout = 10 * time.Second
	defaultWriteTimeout   = 10 * time.Second
	defaultDrainGrace     = 10 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	if c.CellID == "" {
		return c, errors.New("gateway: config: CellID is required")
	}
	if c.Listen == "" {
		return c, errors.New("gateway: config: Listen is required")
	}
	if c.MaxSessions < 0 {
		return c, fmt.Errorf("gateway: config: MaxSessions %d is negative", c.MaxSessions)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	switch c.Engine {
	case "":
		c.Engine = DefaultEngine()
	case EngineGoroutine:
	case EngineEpoll:
		if !epollAvailable {
			return c, errors.New("gateway: config: the epoll engine runs on Linux only")
		}
	default:
		return c, fmt.Errorf("gateway: config: unknown engine %q (want %s or %s)", c.Engine, EngineEpoll, EngineGoroutine)
	}
	if c.Loops < 0 {
		return c, fmt.Errorf("gateway: config: Loops %d is negative", c.Loops)
	}
	if c.Loops == 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	def(&c.AuthTimeout, defaultAuthTimeout)
	def(&c.HeartbeatInterval, defaultHeartbeat)
	def(&c.IdleTimeout, 3*c.HeartbeatInterval)
	def(&c.RequestTimeout, defaultRequestTimeout)
	def(&c.WriteTimeout, defaultWriteTimeout)
	def(&c.DrainGrace, defaultDrainGrace)
	c.MaxFrame = protocol.ClampMaxFrame(c.MaxFrame)
	if c.OutboundQueue <= 0 {
		c.OutboundQueue = defaultOutboundQueue
	}
	if c.RateLimit == 0 {
		c.RateLimit = defaultRateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = defaultRateBurst
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	return c, nil
}

// Identity is who a Hello proved to be.
type Identity struct {
	PlayerID  string
	HomeCell  string
	ExpiresAt time.Time
}

// Authenticator checks a Hello's credentials. The wiring implements it with
// the token verifier: an access token with the player audience, or a resume
// token. Errors should be *apierr.Error with invalid_token or token_expired;
// their code goes back to the client.
type Authenticator interface {
	Authenticate(ctx context.Context, h protocol.Hello) (Identity, error)
}

// ResumeIssuer mints the resume tokens handed out in Welcome and Reconnect.
type ResumeIssuer interface {
	IssueResume(playerID, sessionID, cell string) (string, error)
}

// Deps are a gateway's collaborators.
type Deps struct {
	Logger   *slog.Logger          // nil discards
	Metrics  prometheus.Registerer // nil keeps metrics in a private registry
	Auth     Authenticator         // required
	Resume   ResumeIssuer          // nil: no resume tokens
	Handlers protocol.Handlers     // request opcodes served by the cell's services
	// Edges checks the credential of an edge opening a backbone link;
	// required with Config.BackboneListen.
	Edges backbone.Authenticator
}
