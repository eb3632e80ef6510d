package amqpbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
)

// returnsBuffer holds basic.return frames of one batch. The broker sends a
// message's return before its confirm, and amqp091-go hands both over in
// frame order, so once every confirm is in, every return of the batch is in
// the buffer (as long as it is not full: a batch is at most this big).
const returnsBuffer = 4096

// pubState is the confirm-mode channel publishes share; Publish holds
// pubMu for a whole batch, so confirms and returns belong to one batch.
type pubState struct {
	mu      chanMutex
	ch      *amqp.Channel
	conn    *amqp.Connection
	returns chan amqp.Return
}

// chanMutex is a mutex that can be acquired with a context.
type chanMutex chan struct{}

func (m *chanMutex) lock(ctx context.Context) error {
	if *m == nil {
		return errors.New("amqpbus: publisher not initialised")
	}
	select {
	case *m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *chanMutex) unlock() { <-*m }

// Publish sends evs to the events exchange and returns nil only when the
// broker confirmed every one of them and none was returned unroutable. On
// any error some may have been delivered: the outbox relay retries the
// batch and consumers drop the duplicates.
func (b *Bus) Publish(ctx context.Context, evs []events.Event) error {
	if len(evs) > returnsBuffer {
		return fmt.Errorf("amqpbus: batch of %d events exceeds %d", len(evs), returnsBuffer)
	}
	b.initPublisher()
	if err := b.pub.mu.lock(ctx); err != nil {
		return apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "", err)
	}
	defer b.pub.mu.unlock()
	ch, returns, err := b.publishChannel(ctx)
	if err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(evs))
	for _, e := range evs {
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("amqpbus: encode %s: %w", e.ID, err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, b.cfg.eventsExchange(), e.Type, true, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: e.ID, Type: e.Type,
			Timestamp: e.OccurredAt, Body: body,
		})
		if err != nil {
			b.dropPublisher(ch)
			return apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "publish failed", err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			// The channel may still deliver these confirms later and
			// mix them with the next batch's: start afresh.
			b.dropPublisher(ch)
			return apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "no publisher confirm", err)
		}
		if !ok {
			return apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "broker did not confirm the event", errors.New("nack or channel closed"))
		}
	}
	var unroutable []string
drain:
	for {
		select {
		case r := <-returns:
			unroutable = append(unroutable, r.MessageId+" ("+r.RoutingKey+": "+r.ReplyText+")")
		default:
			break drain
		}
	}
	if len(unroutable) > 0 {
		return apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "", fmt.Errorf("no queue takes %v: is the consumer group declared?", unroutable))
	}
	return nil
}

func (b *Bus) initPublisher() {
	b.mu.Lock()
	if b.pub.mu == nil {
		b.pub.mu = make(chanMutex, 1)
	}
	b.mu.Unlock()
}

// publishChannel returns the confirm-mode channel of the current
// connection, opening it when needed. Callers hold pub.mu.
func (b *Bus) publishChannel(ctx context.Context) (*amqp.Channel, chan amqp.Return, error) {
	conn, err := b.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	if b.pub.ch != nil && b.pub.conn == conn && !b.pub.ch.IsClosed() {
		return b.pub.ch, b.pub.returns, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "open channel", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, nil, apierr.Wrap("amqpbus.Publish", apierr.Unavailable, "confirm mode", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, returnsBuffer))
	b.pub.ch, b.pub.conn, b.pub.returns = ch, conn, returns
	return ch, returns, nil
}

// dropPublisher closes ch so the next publish opens a fresh channel.
func (b *Bus) dropPublisher(ch *amqp.Channel) {
	// Closing waits for the broker's answer; do not hold up the caller.
	go func() { _ = ch.Close() }()
	if b.pub.ch == ch {
		b.pub.ch = nil
	}
}

// resetPublisher forgets the channel of a lost connection. It runs in the
// connection goroutine, which must not wait for a publish to finish.
func (b *Bus) resetPublisher() {
	b.initPublisher()
	select {
	case b.pub.mu <- struct{}{}:
		b.pub.ch = nil
		b.pub.mu.unlock()
	default:
		// A publish holds the channel; it fails on the dead connection and
		// publishChannel replaces the channel next time (pub.conn differs).
	}
}
