package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

func readReconnect(t *testing.T, c *client) protocol.Reconnect {
	t.Helper()
	f := c.read()
	var r protocol.Reconnect
	if f.Opcode != protocol.OpReconnect || f.RequestID != 0 || json.Unmarshal(f.Payload, &r) != nil {
		t.Fatalf("got opcode %v id %d %s, want a reconnect", f.Opcode, f.RequestID, f.Payload)
	}
	return r
}

func TestSetDraining(t *testing.T) {
	h := startGateway(t, nil, nil)
	open := h.dial(t)
	open.hello("good:early")
	h.g.SetDraining(true)
	if !h.g.Draining() {
		t.Fatal("Draining() = false after SetDraining(true)")
	}
	late := h.dial(t) // the listener stays open
	id, f := late.request(protocol.OpHello, helloPayload("good:late"))
	wantError(t, f, apierr.Draining, id)
	late.wantClosed()
	open.ping() // open sessions are left alone

	h.g.SetDraining(false)
	again := h.dial(t)
	again.hello("good:late")
	again.ping()
}

func TestRedirect(t *testing.T) {
	h := startGateway(t, nil, nil)
	const n = 7
	clients := make([]*client, n)
	welcomes := make([]protocol.Welcome, n)
	for i := range clients {
		clients[i] = h.dial(t)
		welcomes[i] = clients[i].hello(fmt.Sprintf("good:p%d", i))
	}
	h.dial(t) // never authenticates: never told

	var seen []string
	start := time.Now()
	told, err := h.g.Redirect(context.Background(), 2, 20*time.Millisecond, func(player, home string) (protocol.Reconnect, bool) {
		seen = append(seen, player+"@"+home)
		if player == "p3" {
			return protocol.Reconnect{}, false // left be
		}
		return protocol.Reconnect{Reason: "draining", Cell: "other", Gateway: "10.0.0.9:4110", RetryAfterMS: 100}, true
	})
	if err != nil || told != n-1 {
		t.Fatalf("Redirect = %d, %v; want %d, nil", told, err, n-1)
	}
	if len(seen) != n {
		t.Errorf("where was asked about %v, want every authenticated session (%d)", seen, n)
	}
	for _, s := range seen {
		if !strings.HasSuffix(s, "@test-cell") {
			t.Errorf("where got %q, want the session's home cell", s)
		}
	}
	// Six sessions in batches of two: two pauses at least.
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Redirect took %v, want at least two pauses of 20ms", d)
	}
	for i, c := range clients {
		if i == 3 {
			c.ping()
			continue
		}
		r := readReconnect(t, c)
		if r.Reason != "draining" || r.Cell != "other" || r.Gateway != "10.0.0.9:4110" || r.RetryAfterMS != 100 {
			t.Errorf("p%d: got %+v", i, r)
		}
		prefix := "resume:p" + fmt.Sprint(i) + ":" + welcomes[i].SessionID + ":test-cell:"
		if !strings.HasPrefix(r.ResumeToken, prefix) {
			t.Errorf("p%d: resume token %q, want one for its session at its home", i, r.ResumeToken)
		}
		c.ping() // told, not closed
	}
	// A cancelled context stops between batches.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	told, err = h.g.Redirect(ctx, 1, time.Hour, func(string, string) (protocol.Reconnect, bool) {
		return protocol.Reconnect{Reason: "draining"}, true
	})
	if err == nil || told != 1 {
		t.Errorf("Redirect with a cancelled context = %d, %v; want 1 told and an error", told, err)
	}
}

func TestMovePlayer(t *testing.T) {
	h := startGateway(t, nil, nil)
	mover := h.dial(t)
	w := mover.hello("good:mover")
	other := h.dial(t)
	other.hello("good:other")

	if !h.g.MovePlayer("mover", protocol.Reconnect{Reason: "rehome", Cell: "new-cell", Gateway: "10.0.0.7:4120"}, "new-cell") {
		t.Fatal("MovePlayer = false for a connected player")
	}
	r := readReconnect(t, mover)
	if r.Reason != "rehome" || r.Cell != "new-cell" || r.Gateway != "10.0.0.7:4120" {
		t.Errorf("got %+v", r)
	}
	if want := "resume:mover:" + w.SessionID + ":new-cell:"; !strings.HasPrefix(r.ResumeToken, want) {
		t.Errorf("resume token %q, want one naming the new home (%s…)", r.ResumeToken, want)
	}
	mover.wantClosed()
	other.ping()
	eventually(t, "the moved session to leave the table", func() bool { return h.g.Sessions() == 1 })
	if h.g.MovePlayer("mover", protocol.Reconnect{Reason: "rehome"}, "new-cell") {
		t.Error("MovePlayer = true for a player no longer here")
	}
	// A token given by the caller is sent as is.
	if !h.g.MovePlayer("other", protocol.Reconnect{Reason: "rehome", ResumeToken: "given"}, "x") {
		t.Fatal("MovePlayer(other) = false")
	}
	if r := readReconnect(t, other); r.ResumeToken != "given" {
		t.Errorf("resume token %q, want the caller's", r.ResumeToken)
	}
}

func TestClosePlayer(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:villain")
	if !h.g.ClosePlayer("villain", "quarantined") {
		t.Fatal("ClosePlayer = false for a connected player")
	}
	f := c.read()
	var bye protocol.Bye
	if f.Opcode != protocol.OpBye || json.Unmarshal(f.Payload, &bye) != nil || bye.Reason != "quarantined" {
		t.Fatalf("got opcode %v %s, want bye quarantined", f.Opcode, f.Payload)
	}
	c.wantClosed()
	if h.g.ClosePlayer("villain", "quarantined") {
		t.Error("ClosePlayer = true for a player no longer here")
	}
}
