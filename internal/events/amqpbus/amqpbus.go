// Package amqpbus is the cell's event bus on RabbitMQ (amqp091-go):
// an events.Publisher with publisher confirms, events.Subscriber consumer
// groups with manual acks and a dead-letter queue each, player pushes for
// gateways, and the dead-letter inspection and replay behind
// `livecell events dlq`.
//
// amqp091-go does not reconnect; this package does. One goroutine owns the
// connection: it dials with backoff, declares the whole topology, and on
// any close (broker restart, network cut, connection closed by an operator)
// dials again. Publishers wait for the connection (bounded by their
// context) and fail the publish if it drops before the broker confirmed, so
// the outbox relay retries; consumers re-open their channel and resume on
// every new connection. Deliveries that were not acked when the connection
// dropped are redelivered by the broker: consumers are idempotent.
//
// Topology, declared by every process on every connection so that
// publishing never depends on a consumer having started:
//
//	<prefix>.events        topic exchange; routing key = event type
//	<prefix>.events.dlx    direct exchange for dead letters
//	<prefix>.<group>       durable queue per consumer group, bound to its
//	                       topics, dead-lettering to <prefix>.events.dlx
//	                       with routing key <group>
//	<prefix>.<group>.dlq   durable queue of the group's dead letters
//	<prefix>.push          topic exchange of player pushes, routing key
//	                       player.<player id>; every gateway process binds
//	                       an exclusive queue to player.*
//
// Messages are persistent; publishes are mandatory, so an event no queue
// would take is returned and the publish fails instead of the event being
// dropped.
package amqpbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
)

// Group is a consumer group and the event types it takes.
type Group struct {
	Name   string
	Topics []string
}

// Config configures the bus.
type Config struct {
	URL string // amqp://user:pass@host:5672/vhost
	// Prefix names every exchange and queue (default "livecell"); tests use
	// a unique one so they share a broker without sharing queues.
	Prefix string
	// Groups is the whole topology: every consumer group of the cell,
	// declared by every process, consumers or not.
	Groups []Group
	// ConnectionName is shown by the broker (rabbitmqctl list_connections
	// client_properties) to tell processes apart.
	ConnectionName string
	// Prefetch bounds unacked deliveries per consumer (default 32); each
	// group handles up to Concurrency of them at once (default 8).
	Prefetch    int
	Concurrency int
	// Retry paces handler retries after transient errors (default 100 ms
	// doubling to 10 s); Reconnect paces dialling (default 100 ms to 5 s).
	Retry, Reconnect events.Backoff
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, errors.New("amqpbus: Config.URL is required")
	}
	if c.Prefix == "" {
		c.Prefix = "livecell"
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "livecell"
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 32
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Retry.Base <= 0 {
		c.Retry = events.Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second}
	}
	if c.Reconnect.Base <= 0 {
		c.Reconnect = events.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}
	}
	for _, g := range c.Groups {
		if g.Name == "" || len(g.Topics) == 0 {
			return c, fmt.Errorf("amqpbus: group %q needs a name and topics", g.Name)
		}
	}
	return c, nil
}

// Names of the topology.
func (c Config) eventsExchange() string        { return c.Prefix + ".events" }
func (c Config) deadExchange() string          { return c.Prefix + ".events.dlx" }
func (c Config) pushExchange() string          { return c.Prefix + ".push" }
func (c Config) queue(group string) string     { return c.Prefix + "." + group }
func (c Config) deadQueue(group string) string { return c.Prefix + "." + group + ".dlq" }

// Bus is a connection to the cell's broker that survives broker restarts.
type Bus struct {
	cfg Config
	log *slog.Logger
	m   *events.Metrics

	mu        sync.Mutex
	conn      *amqp.Connection
	connected chan struct{} // closed while conn is usable; replaced on loss
	closed    bool

	pub pubState // the confirm-mode publishing channel (publish.go)

	stop context.CancelFunc
	done chan struct{}
}

var (
	_ events.Publisher  = (*Bus)(nil)
	_ events.Subscriber = (*Bus)(nil)
)

// New starts the connection manager and returns at once; operations wait
// for the first connection. Close stops it.
func New(cfg Config, log *slog.Logger, m *events.Metrics) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{cfg: cfg, log: log, m: m, connected: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	go b.run(ctx)
	return b, nil
}

// Close closes the connection and stops reconnecting.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	conn := b.conn
	b.mu.Unlock()
	b.stop()
	var err error
	if conn != nil {
		err = conn.Close()
	}
	<-b.done
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

// run keeps a connection up until Close.
func (b *Bus) run(ctx context.Context) {
	defer close(b.done)
	failures := 0
	for ctx.Err() == nil {
		conn, err := b.dial()
		if err != nil {
			failures++
			b.m.Connected(false)
			d := b.cfg.Reconnect.Delay(failures)
			b.log.Warn("amqp: connect failed", "error", err, "retry_in", d, "failures", failures)
			if events.Sleep(ctx, d) != nil {
				return
			}
			continue
		}
		b.log.Info("amqp: connected", "name", b.cfg.ConnectionName, "after_failures", failures)
		failures = 0
		b.m.Connected(true)
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = conn.Close()
			return
		}
		b.conn = conn
		close(b.connected)
		b.mu.Unlock()

		select {
		case <-ctx.Done():
		case reason := <-lost:
			b.log.Warn("amqp: connection lost; reconnecting", "reason", reason)
		}
		b.mu.Lock()
		b.conn = nil
		b.connected = make(chan struct{})
		b.mu.Unlock()
		b.m.Disconnected()
		b.resetPublisher()
	}
}

// dial connects and declares the topology; a connection whose topology
// failed is closed, not used.
func (b *Bus) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(b.cfg.ConnectionName)
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{Heartbeat: 10 * time.Second, Properties: props, Locale: "en_US"})
	if err != nil {
		return nil, err
	}
	if err := b.declare(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("declare topology: %w", err)
	}
	return conn, nil
}

func (b *Bus) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	c := b.cfg
	if err := ch.ExchangeDeclare(c.eventsExchange(), amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(c.deadExchange(), amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(c.pushExchange(), amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return err
	}
	for _, g := range c.Groups {
		if err := declareGroup(ch, c, g.Name, g.Topics); err != nil {
			return err
		}
	}
	return nil
}

func declareGroup(ch *amqp.Channel, c Config, group string, topics []string) error {
	if _, err := ch.QueueDeclare(c.deadQueue(group), true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.QueueBind(c.deadQueue(group), group, c.deadExchange(), false, nil); err != nil {
		return err
	}
	args := amqp.Table{"x-dead-letter-exchange": c.deadExchange(), "x-dead-letter-routing-key": group}
	if _, err := ch.QueueDeclare(c.queue(group), true, false, false, false, args); err != nil {
		return err
	}
	for _, t := range topics {
		if err := ch.QueueBind(c.queue(group), t, c.eventsExchange(), false, nil); err != nil {
			return err
		}
	}
	return nil
}

// connection waits for a usable connection.
func (b *Bus) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		b.mu.Lock()
		conn, ready, closed := b.conn, b.connected, b.closed
		b.mu.Unlock()
		if closed {
			return nil, amqp.ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, apierr.Wrap("amqpbus", apierr.Unavailable, "event broker unavailable", ctx.Err())
		case <-ready:
		}
	}
}

// Connected reports whether the bus holds a connection now.
func (b *Bus) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn != nil && !b.conn.IsClosed()
}
