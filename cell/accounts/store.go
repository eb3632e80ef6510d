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
	Username     string // canonical (lower-case) username; "<provider>#<random>" for accounts a platform login created
	PasswordHash string // argon2id in PHC string format; empty: no password login (platform-only accounts)
	HomeCell     string // cell that owns the player's data
	CreatedAt    time.Time
}

// Identity is a platform account (Steam, Epic) linked to a player. The pair
// (Provider, Subject) belongs to at most one player, and a player has at most
// one identity per provider.
type Identity struct {
	Provider    string // accountsapi.ProviderSteam or accountsapi.ProviderEpic
	Subject     string // the platform's account id
	PlayerID    string
	HomeCell    string // copied from the player, so the row lives in the player's region
	DisplayName string // platform display name when linked; may be empty
	CreatedAt   time.Time
}

// RefreshToken is a stored refresh token. Only the SHA-256 digest of the
// secret the client holds is kept, so a leak of the table grants nothing.
type RefreshToken struct {
	Hash      string // lower-case hex SHA-256 of the token's 32 random bytes
	FamilyID  string // shared by every token rotated from one login
	PlayerID  string
	HomeCell  string // copied from the player, like Identity.HomeCell
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// RefreshOutcome is what presenting a refresh token to RotateRefreshToken did.
type RefreshOutcome int

// Refresh outcomes. Only RefreshRotated and RefreshReused write anything.
const (
	// RefreshRotated: the token was live; it is now used and its successor
	// is stored in the same family.
	RefreshRotated RefreshOutcome = iota + 1
	// RefreshReused: the token had been used before, so two parties hold
	// tokens of its family (one of them stole it). The whole family is now
	// revoked. A used token is reuse whatever else is true of it (revoked,
	// expired): every such presentation is counted and logged.
	RefreshReused
	RefreshUnknown // no such token (or its player is gone)
	RefreshExpired // never used, past its ExpiresAt
	RefreshRevoked // never used, its family revoked (logout or reuse)
)

// RefreshResult is what RotateRefreshToken reports.
type RefreshResult struct {
	Outcome RefreshOutcome
	// Player is the token's player as stored now, so the new access token
	// names the current home cell (RefreshRotated only).
	Player Player
	// Next is the successor as stored (RefreshRotated only).
	Next RefreshToken
	// PlayerID and FamilyID identify the presented token's family, for logs
	// (RefreshRotated and RefreshReused).
	PlayerID, FamilyID string
}

// Store persists players, their linked platform identities and their
// refresh tokens. Implementations: memstore (embedded, for dev and tests) and
// pgstore (PostgreSQL / CockroachDB); storetest is the contract both must
// pass.
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

	// CreatePlayerWithIdentity stores a new player and its first identity
	// atomically: both or neither. id.PlayerID and id.HomeCell are taken from
	// p. A username, player id or identity already in use yields
	// apierr.Conflict and nothing is written.
	CreatePlayerWithIdentity(ctx context.Context, p Player, id Identity) error
	// PlayerByIdentity returns the player a platform account is linked to,
	// or an error with code apierr.NotFound.
	PlayerByIdentity(ctx context.Context, provider, subject string) (Player, error)
	// LinkIdentity links id to the player id.PlayerID (id.HomeCell is taken
	// from the player) and returns the stored identity and whether this call
	// created it. Linking an identity already linked to the same player
	// changes nothing and succeeds (created false). Errors: apierr.NotFound
	// when the player does not exist; apierr.Conflict when the identity
	// belongs to another player or the player already has an identity of
	// this provider. Identities are never merged or moved silently.
	LinkIdentity(ctx context.Context, id Identity) (stored Identity, created bool, err error)
	// UnlinkIdentity removes the player's identity of provider. It refuses,
	// with apierr.Conflict, to remove the player's last way to sign in: the
	// last identity of a player without a password, or of any player when
	// passwordSignIn is false (a cell with password auth off). Errors:
	// apierr.NotFound when the player or the identity does not exist.
	UnlinkIdentity(ctx context.Context, playerID, provider string, passwordSignIn bool) error
	// Identities lists a player's identities, oldest first (then by
	// provider); empty, not an error, for an unknown player.
	Identities(ctx context.Context, playerID string) ([]Identity, error)

	// CreateRefreshToken stores the first token of a new family.
	// apierr.Conflict when the hash exists; apierr.NotFound when the player
	// does not.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken presents the token whose digest is hash at time
	// now, atomically: a live token is marked used and next (Hash,
	// IssuedAt, ExpiresAt; the store fills in family, player and home cell)
	// is stored as its successor; a used one revokes its whole family. Of
	// concurrent calls with one token, exactly one sees RefreshRotated and
	// the others RefreshReused. Outcomes are results, not errors: the error
	// is for failures of the store itself.
	RotateRefreshToken(ctx context.Context, hash string, next RefreshToken, now time.Time) (RefreshResult, error)
	// RevokeRefreshFamily revokes, at time now, every token of the family of
	// the token whose digest is hash, and reports whether such a token
	// exists. Revoking an unknown token or a revoked family is not an error.
	RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) (bool, error)
}

// SessionStore is what a platform sign-in needs of the store, as one atomic
// step each: a returning player is read and handed a new refresh token
// family; a first login creates the player, its identity and its first
// refresh token. A Store may implement it to do each step in one round trip
// (pgstore does, in one SQL statement; memstore under one lock); Sessions
// composes it from the Store's own methods for stores that do not.
type SessionStore interface {
	// SignInByIdentity returns the player a platform account is linked to,
	// as PlayerByIdentity does, and stores t as the first token of a new
	// family for that player (t.PlayerID and t.HomeCell are taken from the
	// player). When no player has the identity the error has code
	// apierr.NotFound and nothing is written; apierr.Conflict when t's hash
	// exists.
	SignInByIdentity(ctx context.Context, provider, subject string, t RefreshToken) (Player, error)
	// CreatePlayerWithIdentityAndToken is CreatePlayerWithIdentity that also
	// stores t as the first token of the new player's first family
	// (t.PlayerID and t.HomeCell are taken from p): all three or nothing.
	// A username, player id, identity or token hash already in use yields
	// apierr.Conflict and nothing is written.
	CreatePlayerWithIdentityAndToken(ctx context.Context, p Player, id Identity, t RefreshToken) error
}

// Sessions returns s as a SessionStore: s itself when it implements one,
// otherwise an adapter that calls s's Store methods one after the other
// (PlayerByIdentity then CreateRefreshToken; CreatePlayerWithIdentity then
// CreateRefreshToken). The adapter's steps are not one atomic unit: a
// failure between them leaves a player without the new token, which costs
// its client one more sign-in and nothing else.
func Sessions(s Store) SessionStore {
	if ss, ok := s.(SessionStore); ok {
		return ss
	}
	return composedSessions{s}
}

type composedSessions struct{ s Store }

func (c composedSessions) SignInByIdentity(ctx context.Context, provider, subject string, t RefreshToken) (Player, error) {
	p, err := c.s.PlayerByIdentity(ctx, provider, subject)
	if err != nil {
		return Player{}, err
	}
	t.PlayerID, t.HomeCell = p.ID, p.HomeCell
	if err := c.s.CreateRefreshToken(ctx, t); err != nil {
		return Player{}, err
	}
	return p, nil
}

func (c composedSessions) CreatePlayerWithIdentityAndToken(ctx context.Context, p Player, id Identity, t RefreshToken) error {
	t.PlayerID, t.HomeCell = p.ID, p.HomeCell
	// Checked first, so that a token that could never be stored does not
	// leave a player behind.
	if err := t.Validate(); err != nil {
		return err
	}
	if err := c.s.CreatePlayerWithIdentity(ctx, p, id); err != nil {
		return err
	}
	return c.s.CreateRefreshToken(ctx, t)
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

// Validate reports whether id can be stored: provider, subject and player
// id set, and storable text everywhere (see Player.Validate). HomeCell is
// not checked: stores copy it from the player.
func (id Identity) Validate() error {
	for _, f := range []struct {
		name, v  string
		optional bool
	}{
		{"provider", id.Provider, false}, {"subject", id.Subject, false}, {"player id", id.PlayerID, false},
		{"display name", id.DisplayName, true},
	} {
		if f.v == "" && !f.optional {
			return apierr.New(apierr.BadRequest, "identity %s is empty", f.name)
		}
		if !StorableText(f.v) {
			return apierr.New(apierr.BadRequest, "identity %s must be valid UTF-8 without NUL", f.name)
		}
	}
	return nil
}

// Validate reports whether t can be stored as a family's first token: every
// text field set and storable, and an expiry after the issue time.
func (t RefreshToken) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"hash", t.Hash}, {"family id", t.FamilyID}, {"player id", t.PlayerID}, {"home cell", t.HomeCell},
	} {
		if f.v == "" {
			return apierr.New(apierr.BadRequest, "refresh token %s is empty", f.name)
		}
		if !StorableText(f.v) {
			return apierr.New(apierr.BadRequest, "refresh token %s must be valid UTF-8 without NUL", f.name)
		}
	}
	if !t.ExpiresAt.After(t.IssuedAt) {
		return apierr.New(apierr.BadRequest, "refresh token expires at %v, not after its issue time %v", t.ExpiresAt, t.IssuedAt)
	}
	return nil
}

// ValidateUnbound is Validate for a first token whose player and home cell
// the store fills in (SessionStore.SignInByIdentity).
func (t RefreshToken) ValidateUnbound() error {
	t.PlayerID, t.HomeCell = "-", "-"
	return t.Validate()
}

// ValidateNext is Validate for a successor, whose family, player and home
// cell the store fills in.
func (t RefreshToken) ValidateNext() error {
	if t.Hash == "" || !StorableText(t.Hash) {
		return apierr.New(apierr.BadRequest, "refresh token hash must be non-empty valid UTF-8 without NUL")
	}
	if !t.ExpiresAt.After(t.IssuedAt) {
		return apierr.New(apierr.BadRequest, "refresh token expires at %v, not after its issue time %v", t.ExpiresAt, t.IssuedAt)
	}
	return nil
}

// StorableText reports whether s can be stored in or looked up from a SQL
// TEXT column (valid UTF-8 without NUL). Stores answer lookups of other
// strings with not_found, as no stored row can match them.
func StorableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
