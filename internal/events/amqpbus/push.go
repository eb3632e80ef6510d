package amqpbus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/protocol"
)

// pushKeyPrefix starts every push routing key: player.<player id>.
const pushKeyPrefix = "player."

// Push sends p to playerID's session, wherever in the cell it lives: every
// gateway process consumes the push exchange (ConsumePushes) and delivers
// to the sessions it holds. Pushes are at-most-once (docs/protocol.md):
// transient messages, no confirm.
func (b *Bus) Push(ctx context.Context, playerID string, p protocol.Push) error {
	if playerID == "" || strings.ContainsAny(playerID, ".*#") {
		return apierr.New(apierr.BadRequest, "player id %q cannot be a routing key word", playerID)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("amqpbus.Push: %w", err)
	}
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return apierr.Wrap("amqpbus.Push", apierr.Unavailable, "", err)
	}
	defer ch.Close()
	return ch.PublishWithContext(ctx, b.cfg.pushExchange(), pushKeyPrefix+playerID, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Transient, Type: p.Topic, MessageId: p.ID,
		Timestamp: time.Now(), Body: body,
	})
}

// ConsumePushes delivers every push published in the cell to deliver until
// ctx ends, across reconnections. It binds an exclusive, auto-deleted queue
// of this process to player.* (per-player bindings would spare gateways the
// pushes of players they do not hold; at one broker per cell, fan-out to its
// few gateway processes is cheap). deliver finds the session, or drops it.
func (b *Bus) ConsumePushes(ctx context.Context, deliver func(ctx context.Context, playerID string, p protocol.Push)) {
	go func() {
		for ctx.Err() == nil {
			err := b.consumePushesOnce(ctx, deliver)
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("amqp: push consumer stopped; resuming on the next connection", "error", err)
			if events.Sleep(ctx, 200*time.Millisecond) != nil {
				return
			}
		}
	}()
}

func (b *Bus) consumePushesOnce(ctx context.Context, deliver func(context.Context, string, protocol.Push)) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	if err := ch.QueueBind(q.Name, pushKeyPrefix+"*", b.cfg.pushExchange(), false, nil); err != nil {
		return err
	}
	msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("push channel closed")
			}
			var p protocol.Push
			if err := json.Unmarshal(m.Body, &p); err != nil {
				b.log.Warn("amqp: malformed push dropped", "error", err)
				continue
			}
			deliver(ctx, strings.TrimPrefix(m.RoutingKey, pushKeyPrefix), p)
		}
	}
}
