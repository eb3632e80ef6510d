// Package scenario reads load-test scenarios: small declarative YAML files
// that say how many simulated players to run, how they sign in and connect,
// which requests they send at what rate, how long their sessions last, and
// how the number of players ramps up and down over named phases.
//
// Parse checks a file completely before anything runs: every problem comes
// back at once, each with its line, in the file's own words (see
// docs/loadtest.md for the format). A Scenario that Parse returns is valid;
// the load tester never second-guesses it.
package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/livecell/livecell/internal/protocol"
)

// Login is how a simulated player gets its access token.
type Login string

const (
	// LoginPassword resolves the player's home cell at the router, registers
	// a development account there on the first sign-in, then logs in or
	// refreshes: the flow a game client follows.
	LoginPassword Login = "password"
	// LoginToken mints access tokens locally with the cells' signing key and
	// connects straight to the gateways: no router, no accounts, so a
	// gateway benchmark with 100,000 sessions does not measure sign-ins.
	LoginToken Login = "token"
)

// Via is what a player dials.
type Via string

const (
	ViaGateway Via = "gateway" // the home cell's gateway, as resolved or configured
	ViaEdge    Via = "edge"    // an edge relay, which forwards to the home cell
)

// Arrival is how an open-loop player spaces its requests.
type Arrival string

const (
	ArrivalUniform Arrival = "uniform" // a fixed interval, from a random phase
	ArrivalPoisson Arrival = "poisson" // exponentially distributed intervals
)

// Defaults of optional fields.
const (
	DefaultTransport = "tcp"
	DefaultTimeout   = 10 * time.Second
)

// Scenario is a validated scenario file.
type Scenario struct {
	Name    string
	Players int
	// Cells spread the players round-robin: player i homes to
	// Cells[i%len(Cells)]. Empty lets the router place them (password
	// login) or uses every cell of the target (token login).
	Cells    []string
	Login    Login
	Connect  Connect
	Session  Session
	Requests Requests
	Phases   []Phase
}

// Connect says how players reach the game server.
type Connect struct {
	Via Via
	// Transport names the connection type: "tcp" is built in; an edge's
	// "quic" and "ws" work once a transport of that name is registered
	// with the load tester.
	Transport string
	// Heartbeat is how often players ping when idle: 0 follows the
	// server's Welcome, a negative value sends none.
	Heartbeat time.Duration
	// Timeout bounds a connect, a sign-in call and each request.
	Timeout time.Duration
}

// Session says how long a player stays connected.
type Session struct {
	// Length is how long a session lasts before the player disconnects
	// (drawn per session); zero keeps it for the player's whole active time.
	Length Range
	// Offline is how long a player stays away before reconnecting.
	Offline Range
	// Resume reconnects with the resume token of the last Welcome rather
	// than a fresh sign-in.
	Resume bool
}

// Requests say what connected players send.
type Requests struct {
	// Rate is each player's open-loop request rate per second: sends are
	// scheduled at fixed (or Poisson) times whatever the responses do, and
	// latency is measured from the scheduled time, so a stalled server
	// cannot hide its stall (coordinated omission). Zero with a zero
	// Think sends no requests: players only connect and heartbeat.
	Rate float64
	// TotalRate is the rate across all players at full strength as the
	// file gave it (Rate is then TotalRate/Players); 0 when the file gave
	// a per-player rate.
	TotalRate float64
	// Think makes players closed-loop instead: send, wait for the
	// response, think for a time drawn from Think, repeat.
	Think   Range
	Arrival Arrival
	Mix     []Op
}

// OpenLoop reports whether requests follow a schedule (Rate) rather than
// responses (Think).
func (r Requests) OpenLoop() bool { return r.Rate > 0 }

// Op is one kind of request in the mix.
type Op struct {
	Name    string // label in reports; defaults to the opcode's name
	Opcode  protocol.Opcode
	Weight  int
	Payload []byte // JSON, sent as is; nil sends an empty payload
}

// Phase is a stretch of the run over which the number of active players
// moves linearly from From to To.
type Phase struct {
	Name     string
	Duration time.Duration
	From, To int
}

// Range is a duration drawn uniformly from [Min, Max].
type Range struct {
	Min, Max time.Duration
}

// IsZero reports whether the range is unset.
func (r Range) IsZero() bool { return r.Max == 0 }

// Pick draws a duration from the range.
func (r Range) Pick(rnd *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rnd.Int64N(int64(r.Max-r.Min)+1))
}

func (r Range) String() string {
	if r.Min == r.Max {
		return r.Min.String()
	}
	return r.Min.String() + ".." + r.Max.String()
}

// Duration is the length of the whole run.
func (s *Scenario) Duration() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		d += p.Duration
	}
	return d
}

// PhaseAt returns the index of the phase running at offset t from the start
// (the last phase for t at or past the end, the first for t < 0).
func (s *Scenario) PhaseAt(t time.Duration) int {
	var end time.Duration
	for i, p := range s.Phases {
		end += p.Duration
		if t < end {
			return i
		}
	}
	return len(s.Phases) - 1
}

// PlayersAt returns how many players the schedule wants active at offset t.
func (s *Scenario) PlayersAt(t time.Duration) float64 {
	if len(s.Phases) == 0 || t < 0 {
		return 0
	}
	var start time.Duration
	for _, p := range s.Phases {
		if t < start+p.Duration {
			from, to := float64(p.From), float64(p.To)
			return from + (to-from)*float64(t-start)/float64(p.Duration)
		}
		start += p.Duration
	}
	return float64(s.Phases[len(s.Phases)-1].To)
}

// Span is a stretch of the run, as offsets from its start.
type Span struct {
	From, To time.Duration
}

// Active returns when player n (0-based, over all shards) is active: while
// the schedule wants more than n players. Players join in index order as a
// phase ramps up and leave in reverse order as one ramps down, so a player
// is either active or not, never half-way.
func (s *Scenario) Active(n int) []Span {
	var (
		out   []Span
		on    bool
		from  time.Duration
		start time.Duration
	)
	g := float64(n)
	mark := func(at time.Duration, active bool) {
		switch {
		case active && !on:
			on, from = true, at
		case !active && on:
			on = false
			if at > from {
				out = append(out, Span{from, at})
			}
		}
	}
	for _, p := range s.Phases {
		prev, to := float64(p.From), float64(p.To)
		switch {
		case prev == to:
			mark(start, g < to)
		case prev < to: // ramping up: n joins when the target passes n
			if g < prev {
				mark(start, true)
			} else if g < to {
				mark(start+crossing(prev, to, g, p.Duration), true)
			} else {
				mark(start, false)
			}
		default: // ramping down: n leaves when the target falls to n
			if g < to {
				mark(start, true)
			} else if g < prev {
				mark(start, true)
				mark(start+crossing(prev, to, g, p.Duration), false)
			} else {
				mark(start, false)
			}
		}
		start += p.Duration
	}
	mark(start, false)
	return out
}

// crossing is when, into a phase of length d moving linearly from a to b,
// the target equals g.
func crossing(a, b, g float64, d time.Duration) time.Duration {
	f := (g - a) / (b - a)
	return time.Duration(math.Round(f * float64(d)))
}

// Pick returns the mix entry for a uniform draw u in [0, 1).
func (r Requests) Pick(u float64) *Op {
	total := 0
	for _, op := range r.Mix {
		total += op.Weight
	}
	x := int(u * float64(total))
	for i := range r.Mix {
		if x < r.Mix[i].Weight {
			return &r.Mix[i]
		}
		x -= r.Mix[i].Weight
	}
	return &r.Mix[len(r.Mix)-1]
}

// Summary is a one-line description for logs and reports.
func (s *Scenario) Summary() string {
	load := "no requests"
	switch {
	case s.Requests.TotalRate > 0:
		load = fmt.Sprintf("%g req/s in total (open loop)", s.Requests.TotalRate)
	case s.Requests.Rate > 0:
		load = fmt.Sprintf("%g req/s per player (open loop)", s.Requests.Rate)
	case !s.Requests.Think.IsZero():
		load = "think " + s.Requests.Think.String() + " (closed loop)"
	}
	return fmt.Sprintf("%s: %d players, login %s, via %s/%s, %s, %d phases over %s",
		s.Name, s.Players, s.Login, s.Connect.Via, s.Connect.Transport, load, len(s.Phases), s.Duration())
}
