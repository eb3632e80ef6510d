package directory

import (
	"time"
	"unicode/utf8"

	"github.com/livecell/livecell/internal/apierr"
)

// OverrideKind says what an override does to a player's routing.
type OverrideKind string

const (
	// Pin sends the player to Override.Cell instead of their home, for
	// testers on a canary cell or a heavy player on a cell of their own.
	// Their data stays at home; the pinned cell admits their sessions.
	Pin OverrideKind = "pin"
	// Quarantine isolates a player: with a Cell, they are sent only there
	// (a quarantine cell); without one, the router refuses them and their
	// cell closes their sessions.
	Quarantine OverrideKind = "quarantine"
)

// MaxOverrides bounds the override table. Routers and every cell hold all
// of it in memory and reload it every few seconds: it is for exceptions an
// operator manages by hand, not a second directory.
const MaxOverrides = 10_000

// MaxNoteLength bounds the free-text fields (reason, by) operators fill.
const MaxNoteLength = 256

// Override is one entry of the override table.
type Override struct {
	PlayerID string
	Kind     OverrideKind
	Cell     string // required for Pin, optional for Quarantine
	Reason   string // free text for the next operator
	By       string // who set it (the credential's subject)
	At       time.Time
}

// validate checks o as SetOverride receives it.
func (o Override) validate(op string) error {
	if !validID(o.PlayerID) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid player id", nil)
	}
	switch o.Kind {
	case Pin:
		if o.Cell == "" {
			return apierr.Wrap(op, apierr.BadRequest, "a pin needs a cell", nil)
		}
	case Quarantine:
	default:
		return apierr.Wrap(op, apierr.BadRequest, "override kind must be pin or quarantine", nil)
	}
	if o.Cell != "" && !validID(o.Cell) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid cell id", nil)
	}
	if !validNote(o.Reason) || !validNote(o.By) {
		return apierr.Wrap(op, apierr.BadRequest, "reason and by must be UTF-8 text of at most 256 bytes", nil)
	}
	return nil
}

// validNote accepts what a TEXT column stores, short.
func validNote(s string) bool {
	if len(s) > MaxNoteLength || !utf8.ValidString(s) {
		return false
	}
	for i := range len(s) {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

func errOverridesFull(op string) error {
	return apierr.Wrap(op, apierr.Conflict, "the override table is full (10000 entries): clear some first", nil)
}
