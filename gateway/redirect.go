package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/livecell/livecell/internal/protocol"
)

// SetDraining makes the gateway refuse new sessions (a Hello is answered
// with apierr.Draining, so the client resolves its cell again) or admit
// them again. Unlike Drain it leaves the listener open and open sessions
// alone: a cell the control plane drains keeps serving its players until
// they have moved, and can be undrained without a restart.
func (g *Gateway) SetDraining(on bool) { g.draining.Store(on) }

// Draining reports whether the gateway refuses new sessions.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// Redirect tells the gateway's authenticated sessions to reconnect
// elsewhere, batch of them every pause (a pace the cells receiving them can
// take), and returns how many it told. where decides per session, from its
// player and the player's home cell: the Reconnect to send, or false to
// leave the session be. A Reconnect without a resume token gets one for
// the session's home cell. Sessions are told, never closed: one whose
// client ignores the frame stays until it is told again, or the gateway
// drains or stops.
func (g *Gateway) Redirect(ctx context.Context, batch int, pause time.Duration, where func(player, home string) (protocol.Reconnect, bool)) (told int, err error) {
	if batch < 1 {
		batch = 1
	}
	sessions := g.table.authenticated()
	inBatch := 0
	for _, c := range sessions {
		r, ok := where(c.player, c.home)
		if !ok {
			continue
		}
		if inBatch == batch {
			if err := sleep(ctx, pause); err != nil {
				return told, fmt.Errorf("gateway: redirect: %w", err)
			}
			inBatch = 0
		}
		if r.ResumeToken == "" {
			r.ResumeToken = c.resumeToken(c.player, c.sessionID)
		}
		if c.sendJSON(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}}, r) {
			told++
		}
		inBatch++
	}
	if told > 0 {
		g.log.LogAttrs(ctx, slog.LevelInfo, "gateway: sessions redirected", slog.Int("told", told), slog.Int("sessions", len(sessions)))
	}
	return told, nil
}

// MovePlayer sends player's session r as its last frame and closes it: the
// player was rehomed, and this cell must not serve them any longer. When r
// carries no resume token and the gateway issues them, the session gets
// one naming resumeHome, so that the player resumes at once in the cell r
// points to. It reports whether the player had a session here.
func (g *Gateway) MovePlayer(player string, r protocol.Reconnect, resumeHome string) bool {
	c := g.table.lookup(player)
	if c == nil {
		return false
	}
	if r.ResumeToken == "" && g.resume != nil {
		if tok, err := g.resume.IssueResume(player, c.sessionID, resumeHome); err == nil {
			r.ResumeToken = tok
		} else {
			g.log.Warn("gateway: issue resume token for a moved player", "player", player, "error", err)
		}
	}
	payload, err := json.Marshal(r)
	if err != nil { // strings and numbers only
		return false
	}
	f := protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}, Payload: payload}
	return c.closeWith(&f, false)
}

// ClosePlayer ends player's session with a bye carrying reason (an
// operator quarantined the player) and reports whether there was one.
func (g *Gateway) ClosePlayer(player, reason string) bool {
	c := g.table.lookup(player)
	if c == nil {
		return false
	}
	bye := byeFrame(reason)
	return c.closeWith(&bye, false)
}
