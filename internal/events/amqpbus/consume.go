package amqpbus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/events"
)

// Subscribe consumes group's queue with h until ctx ends, across
// reconnections, and returns at once: consumption starts when the broker is
// reachable. Each connection declares the group's queue and bindings for
// topics (normally already part of Config.Groups), so events published
// before the consumer first connects wait in the queue.
//
// Each delivery is handled by h: nil acks it; a Permanent error (or a body
// that is not an event) rejects it without requeue, which dead-letters it
// to <prefix>.<group>.dlq; any other error retries h with backoff while the
// delivery stays unacked, so a database outage pauses consumption without
// losing or dead-lettering anything. If the connection drops meanwhile, the
// broker redelivers to whichever consumer is up next.
func (b *Bus) Subscribe(ctx context.Context, group string, topics []string, h events.Handler) error {
	if group == "" || len(topics) == 0 || h == nil {
		return fmt.Errorf("amqpbus.Subscribe: group, topics and handler are required")
	}
	go func() {
		for ctx.Err() == nil {
			err := b.consumeOnce(ctx, group, topics, h)
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("amqp: consumer stopped; resuming on the next connection", "group", group, "error", err)
			// A lost connection is noticed by the connection goroutine; a
			// channel-level failure needs a pause before trying again.
			if events.Sleep(ctx, 200*time.Millisecond) != nil {
				return
			}
		}
	}()
	return nil
}

// consumeOnce runs one consumer on the current connection until its channel
// closes.
func (b *Bus) consumeOnce(ctx context.Context, group string, topics []string, h events.Handler) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := declareGroup(ch, b.cfg, group, topics); err != nil {
		return fmt.Errorf("declare %s: %w", group, err)
	}
	if err := ch.Qos(b.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := ch.Consume(b.cfg.queue(group), b.cfg.ConnectionName+"/"+group, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", group, err)
	}
	b.log.Info("amqp: consuming", "group", group, "queue", b.cfg.queue(group))

	// Workers stop with the channel: chCtx ends when it closes.
	chCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-closed:
		case <-chCtx.Done():
		}
		cancel()
	}()
	var wg sync.WaitGroup
	for range b.cfg.Concurrency {
		wg.Go(func() {
			for d := range deliveries {
				b.handle(chCtx, group, d, h)
			}
		})
	}
	select {
	case <-ctx.Done():
		_ = ch.Close() // ends deliveries, so the workers return
	case <-chCtx.Done():
	}
	wg.Wait()
	return fmt.Errorf("channel of %s closed", group)
}

// handle runs h on one delivery until it succeeds, fails permanently or
// the channel goes away.
func (b *Bus) handle(ctx context.Context, group string, d amqp.Delivery, h events.Handler) {
	start := time.Now()
	var e events.Event
	if err := json.Unmarshal(d.Body, &e); err != nil || e.Validate() != nil {
		b.deadLetter(group, d, fmt.Sprintf("not an event: %v", err), start)
		return
	}
	for attempt := 1; ; attempt++ {
		err := h(ctx, e)
		switch {
		case err == nil:
			if aerr := d.Ack(false); aerr != nil {
				b.log.Warn("amqp: ack failed; the event will be redelivered", "group", group, "event", e.ID, "error", aerr)
			}
			b.m.Handled(group, events.ResultOK, time.Since(start))
			return
		case events.IsPermanent(err):
			b.deadLetter(group, d, err.Error(), start)
			return
		}
		b.m.Handled(group, events.ResultRetried, time.Since(start))
		delay := b.cfg.Retry.Delay(attempt)
		b.log.Warn("amqp: handler failed; retrying", "group", group, "event", e.ID, "type", e.Type, "attempt", attempt, "retry_in", delay, "error", err)
		if events.Sleep(ctx, delay) != nil {
			return // channel gone: the broker redelivers
		}
		start = time.Now()
	}
}

func (b *Bus) deadLetter(group string, d amqp.Delivery, reason string, start time.Time) {
	b.m.Handled(group, events.ResultDeadLettered, time.Since(start))
	b.log.Error("amqp: event dead-lettered", "group", group, "message", d.MessageId, "type", d.Type, "reason", reason)
	if err := d.Reject(false); err != nil {
		b.log.Warn("amqp: reject failed; the event will be redelivered", "group", group, "message", d.MessageId, "error", err)
	}
}
