package amqpbus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/events"
)

// DeadLetter is one message of a group's dead-letter queue.
type DeadLetter struct {
	Group string       `json:"group"`
	Event events.Event `json:"event"`
	// Reason and At come from the broker's x-death header: why and when
	// the message was dead-lettered ("rejected" by a consumer, "expired",
	// "maxlen").
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Count  int64     `json:"count"` // how often it was dead-lettered
	// Raw holds the body when it is not an event.
	Raw string `json:"raw,omitempty"`
}

// DeadLetters returns up to max messages of group's dead-letter queue
// without removing them: they are fetched unacked and go back to the queue
// when the inspecting channel closes.
func (b *Bus) DeadLetters(ctx context.Context, group string, max int) ([]DeadLetter, error) {
	conn, err := b.connection(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(b.cfg.deadQueue(group), true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("amqpbus: no dead-letter queue for group %q: %w", group, err)
	}
	var out []DeadLetter
	for len(out) < max {
		d, ok, err := ch.Get(b.cfg.deadQueue(group), false)
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out = append(out, deadLetter(group, d))
	}
	return out, nil
}

func deadLetter(group string, d amqp.Delivery) DeadLetter {
	dl := DeadLetter{Group: group}
	if err := json.Unmarshal(d.Body, &dl.Event); err != nil || dl.Event.ID == "" {
		dl.Raw = string(d.Body)
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if first, ok := deaths[0].(amqp.Table); ok {
			dl.Reason, _ = first["reason"].(string)
			dl.At, _ = first["time"].(time.Time)
			dl.Count, _ = first["count"].(int64)
		}
	}
	return dl
}

// Replay moves up to max dead letters of group back to the group's queue,
// oldest first, and returns how many it moved. Each is republished with a
// confirm before it is removed from the dead-letter queue, so a crash in
// between duplicates a message (the consumer is idempotent) and never loses
// one. It goes to the group's own queue only: other groups already handled
// the event.
func (b *Bus) Replay(ctx context.Context, group string, max int) (int, error) {
	conn, err := b.connection(ctx)
	if err != nil {
		return 0, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	moved := 0
	for moved < max {
		d, ok, err := ch.Get(b.cfg.deadQueue(group), false)
		if err != nil {
			return moved, err
		}
		if !ok {
			break
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", b.cfg.queue(group), true, false, amqp.Publishing{
			ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId, Type: d.Type,
			Timestamp: d.Timestamp, Body: d.Body,
		})
		if err != nil {
			return moved, err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			_ = d.Nack(false, true)
			return moved, fmt.Errorf("amqpbus: replay of %s not confirmed: %v", d.MessageId, err)
		}
		if err := d.Ack(false); err != nil {
			return moved, err
		}
		moved++
	}
	return moved, nil
}
