package benchrig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/livecell/livecell/gateway"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// Cell is the cell id the rig's gateways announce and its tokens name.
const Cell = "bench"

// ServerConfig is one gateway process of the rig.
type ServerConfig struct {
	Listen  string // host:port, shared by every server (SO_REUSEPORT)
	KeyFile string // PEM signing key; the gateway uses its public half
	Engine  string // gateway.EngineEpoll or gateway.EngineGoroutine; "" default
	Loops   int    // epoll loops; 0 default
}

// playerAuth admits player tokens, verified offline, and remembers who
// connected so the push phase can address them.
type playerAuth struct {
	verify *token.Verifier

	mu      sync.Mutex
	players []string
}

func (a *playerAuth) Authenticate(_ context.Context, h protocol.Hello) (gateway.Identity, error) {
	c, err := a.verify.Verify(h.Token, token.AudiencePlayer)
	if err != nil {
		return gateway.Identity{}, err
	}
	a.mu.Lock()
	a.players = append(a.players, c.Subject)
	a.mu.Unlock()
	return gateway.Identity{PlayerID: c.Subject, HomeCell: c.Cell, ExpiresAt: c.ExpiresAt}, nil
}

func (a *playerAuth) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.players...)
}

// RunServer serves a gateway on cfg.Listen and obeys the parent's commands
// on in until it says stop or in ends.
func RunServer(ctx context.Context, cfg ServerConfig, in io.Reader, out io.Writer) error {
	ks, err := token.LoadKeySet(cfg.KeyFile)
	if err != nil {
		return err
	}
	auth := &playerAuth{verify: token.NewVerifier(ks, nil)}
	g, err := gateway.New(gateway.Config{
		CellID: Cell, Listen: cfg.Listen, ReusePort: true, Engine: cfg.Engine, Loops: cfg.Loops,
		// Idle sessions must outlive the whole run without heartbeats, and
		// a benchmark measures throughput, not the per-session limits.
		HeartbeatInterval: time.Hour, RateLimit: -1, OutboundQueue: 4096,
		AuthTimeout: time.Minute,
	}, gateway.Deps{Auth: auth})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
	}()
	em := &emitter{w: out}
	em.emit(event{Event: "ready", PID: os.Getpid(), Addr: g.Addr().String()})
	return readCommands(in, func(c command) {
		switch c.Cmd {
		case "push":
			n, queued, secs := pushPhase(ctx, g, auth.snapshot(), c.Rate, c.Seconds)
			em.emit(event{Event: "pushed", Sent: n, Pushes: queued, Seconds: secs, Sessions: g.Sessions()})
		case "heap":
			// After the RSS was read: a collection now shows the live heap,
			// which RSS exceeds by garbage and by pages not yet returned.
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			em.emit(event{Event: "heap", Sessions: g.Sessions(), HeapBytes: int64(ms.HeapAlloc)})
		default:
			em.emit(event{Event: "error", Message: "unknown command " + c.Cmd})
		}
	})
}

// pushTick is how often the push phase hands out the pushes that are due:
// each tick fans one event out to the next players in turn.
const pushTick = 2 * time.Millisecond

// pushPhase pushes to players round robin at rate per second for seconds,
// and reports how many pushes it made, how many were queued to a session
// and how long it took. Each push carries its send time, so clients can
// time the delivery.
func pushPhase(ctx context.Context, g *gateway.Gateway, players []string, rate, seconds float64) (sent, queued int64, took float64) {
	if len(players) == 0 || rate <= 0 {
		return 0, 0, 0
	}
	start := time.Now()
	total := int64(rate * seconds)
	next := 0
	t := time.NewTicker(pushTick)
	defer t.Stop()
	batch := make([]string, 0, 1024)
	for sent < total && ctx.Err() == nil {
		due := min(total, int64(time.Since(start).Seconds()*rate)+1) - sent
		for due > 0 {
			batch = batch[:0]
			for len(batch) < int(min(due, int64(cap(batch)))) {
				batch = append(batch, players[next])
				next = (next + 1) % len(players)
			}
			stamp, _ := json.Marshal(struct {
				T int64 `json:"t"`
			}{time.Now().UnixNano()})
			d, _ := g.PushMany(ctx, batch, protocol.Push{Topic: "bench", ID: strconv.FormatInt(sent, 10), Data: stamp})
			sent += int64(len(batch))
			queued += int64(d)
			due -= int64(len(batch))
		}
		<-t.C
	}
	return sent, queued, time.Since(start).Seconds()
}

func (c ServerConfig) args() []string {
	return []string{"--role=server", "--listen=" + c.Listen, "--key-file=" + c.KeyFile,
		"--engine-server=" + c.Engine, "--loops-server=" + fmt.Sprint(c.Loops)}
}
