package accounts

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livecell/livecell/internal/apierr"
)

// Player is one account as the store keeps it.
type Player struct {
	ID           string // UUIDv7, assigned by the service
	Username     string // canonical (lower-case) username
	PasswordHash string // argon2id in PHC string format; empty: no password login (platform-only accounts)
	HomeCell     string // cell that owns the player's data
	CreatedAt    time.Time
}

// Store persists players. Implementations: memstore (embedded, for dev and
// tests) and pgstore (PostgreSQL / CockroachDB); storetest is the contract
// both must pass.
//
// Usernames are compared exactly: the service lower-cases them before every
// call, which is what makes them unique case-insensitively.
type Store interface {
	// CreatePlayer stores a new player. A username or id already in use
	// yields an error with code apierr.Conflict and nothing is written.
	CreatePlayer(ctx context.Context, p Player) error
	// PlayerByUsername returns the player with exactly this username, or an
	// error with code apierr.NotFound.
	PlayerByUsername(ctx context.Context, username string) (Player, error)
	// PlayerByID returns the player with this id, or an error with code
	// apierr.NotFound.
	PlayerByID(ctx context.Context, id string) (Player, error)
}

// Validate reports whether p can be stored: id, username and home cell set,
// and text that SQL TEXT columns can hold (valid UTF-8 without NUL). Stores
// call it so that such input is the caller's bad_request on every
// implementation, not a database error on one of them.
func (p Player) Validate() error {
	for _, f := range []struct {
		name, v  string
		optional bool
	}{
		{"id", p.ID, false}, {"username", p.Username, false}, {"password hash", p.PasswordHash, true}, {"home cell", p.HomeCell, false},
	} {
		if f.v == "" && !f.optional {
			return apierr.New(apierr.BadRequest, "player %s is empty", f.name)
		}
		if !StorableText(f.v) {
			return apierr.New(apierr.BadRequest, "player %s must be valid UTF-8 without NUL", f.name)
		}
	}
	return nil
}

// StorableText reports whether s can be stored in or looked up from a SQL
// TEXT column (valid UTF-8 without NUL). Stores answer lookups of other
// strings with not_found, as no stored row can match them.
func StorableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
