// Package accounts is a cell's accounts service: it creates players, checks
// their credentials and issues the short-lived access tokens that the cell's
// gateway and HTTP APIs accept.
//
// A player signs in with a platform account (Steam session tickets, Epic
// ID tokens: the first login creates the player, later platforms link to
// it) or, for development, a username and password (argon2id). Every
// sign-in returns a short-lived access token and an opaque refresh token;
// refresh tokens rotate on every use and a reused one revokes its whole
// family (reuse means it was copied). Sign-in attempts are rate limited per
// source address and per account name, failures costing more.
//
// The service depends only on small interfaces it defines (Store, and the
// token issuer, token verifier, home directory and platform verifiers in
// Deps), so the wiring chooses the implementations: memstore or pgstore,
// in-process or remote directory, real or test platforms. Other components
// use cell/accountsapi, never this package.
package accounts

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/cell/accountsapi"
)

// MaxAccessTokenTTL bounds access token lifetimes: access tokens cannot be
// revoked, so a stolen one must expire soon.
const MaxAccessTokenTTL = 15 * time.Minute

// minAccessTokenTTL keeps ExpiresIn meaningful: a token that expires before
// the client can present it is a misconfiguration.
const minAccessTokenTTL = time.Minute

// Refresh token lifetimes. Each rotation starts a new lifetime, so a player
// who plays at least once per TTL stays signed in.
const (
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	minRefreshTokenTTL     = time.Hour
	maxRefreshTokenTTL     = 365 * 24 * time.Hour
)

// Config configures the accounts service of one cell.
type Config struct {
	// CellID is this cell's id; new players are homed here.
	CellID string
	// AccessTokenTTL is the lifetime of issued access tokens
	// (0 means MaxAccessTokenTTL; at most MaxAccessTokenTTL).
	AccessTokenTTL time.Duration
	// PasswordAuth enables development username/password registration and
	// login. When false, those endpoints answer 403 permission_denied.
	PasswordAuth bool
	// Argon2 are the cost parameters for new password hashes (zero value
	// means DefaultArgon2).
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds argon2 computations in flight (0 means
	// GOMAXPROCS). Each holds Argon2.MemoryKiB of memory, so this bounds
	// the memory a burst of logins can take; the rest wait their turn.
	MaxConcurrentHashes int
	// RefreshTokenTTL is the lifetime of refresh tokens (0 means
	// DefaultRefreshTokenTTL; 1 hour to 365 days).
	RefreshTokenTTL time.Duration
	// RateLimit bounds sign-in attempts; the zero value is on, with
	// defaults.
	RateLimit RateLimitConfig
}

// tokenIssuer issues player access tokens; *token.Signer satisfies it.
type tokenIssuer interface {
	IssuePlayer(playerID, homeCell string, ttl time.Duration) (token string, exp time.Time, err error)
}

// playerVerifier checks a player access token (signature, expiry, player
// audience) and returns whom it was issued to. Errors should carry
// apierr.InvalidToken or apierr.TokenExpired; others are reported as
// invalid_token. The wiring adapts token.Verifier with VerifyFunc.
type playerVerifier interface {
	VerifyPlayer(token string) (playerID, homeCell string, err error)
}

// homeSetter records a player's home cell in the global directory so the
// router can resolve the player.
type homeSetter interface {
	SetHome(ctx context.Context, playerID, cellID string) error
}

// VerifyFunc adapts a function to the token verifier Deps.Verify expects.
type VerifyFunc func(token string) (playerID, homeCell string, err error)

// VerifyPlayer calls f.
func (f VerifyFunc) VerifyPlayer(token string) (string, string, error) { return f(token) }

// SetHomeFunc adapts a function to the home directory Deps.Homes expects.
type SetHomeFunc func(ctx context.Context, playerID, cellID string) error

// SetHome calls f.
func (f SetHomeFunc) SetHome(ctx context.Context, playerID, cellID string) error {
	return f(ctx, playerID, cellID)
}

var (
	_ playerVerifier = VerifyFunc(nil)
	_ homeSetter     = SetHomeFunc(nil)
)

// platformVerifier checks a ticket or token a game client got from its
// platform and says whose it is; steam.Verifier and epic.Verifier satisfy
// it. Errors carry the apierr codes package platform documents:
// bad_request (not a ticket), invalid_credentials (rejected),
// permission_denied (banned), unavailable (platform unreachable).
type platformVerifier interface {
	Verify(ctx context.Context, ticket string) (platform.Identity, error)
}

// Deps are the service's collaborators.
type Deps struct {
	Logger *slog.Logger // nil discards logs; the wiring adds service and cell attributes
	Store  Store
	Tokens tokenIssuer
	Verify playerVerifier
	Homes  homeSetter
	// Steam and Epic verify platform sign-ins. A nil one turns that
	// platform off on this cell: its login and link endpoints answer 403
	// permission_denied. (Pass a nil interface, not a typed nil pointer.)
	Steam   platformVerifier
	Epic    platformVerifier
	Now     func() time.Time      // nil means time.Now
	Metrics prometheus.Registerer // nil records no metrics; the wiring adds the cell label
}

// Service is the accounts service of one cell. It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store Store
	// sessions is store's SessionStore (see Sessions).
	sessions SessionStore
	tokens   tokenIssuer
	verify   playerVerifier
	homes    homeSetter
	now      func() time.Time
	metrics  *metrics
	// platforms maps accountsapi.Provider* to its verifier; absent means off.
	platforms map[string]platformVerifier
	// limits is nil when rate limiting is disabled.
	limits *limits

	// hashSlots bounds concurrent argon2 work (see Config.MaxConcurrentHashes).
	hashSlots chan struct{}
	// dummyHash is verified against when a login names no account, so that
	// an unknown username costs as much time as a wrong password and
	// response times do not reveal which usernames exist.
	dummyHash string
}

// New validates cfg and deps and returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.CellID == "" || strings.TrimSpace(cfg.CellID) != cfg.CellID {
		return nil, fmt.Errorf("accounts.New: cell id %q must be non-empty without surrounding spaces", cfg.CellID)
	}
	switch {
	case cfg.AccessTokenTTL == 0:
		cfg.AccessTokenTTL = MaxAccessTokenTTL
	case cfg.AccessTokenTTL < minAccessTokenTTL || cfg.AccessTokenTTL > MaxAccessTokenTTL:
		return nil, fmt.Errorf("accounts.New: access token TTL %v out of range %v..%v", cfg.AccessTokenTTL, minAccessTokenTTL, MaxAccessTokenTTL)
	}
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = DefaultArgon2()
	}
	if err := cfg.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("accounts.New: %w", err)
	}
	switch {
	case cfg.MaxConcurrentHashes == 0:
		cfg.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	case cfg.MaxConcurrentHashes < 0:
		return nil, fmt.Errorf("accounts.New: MaxConcurrentHashes %d is negative", cfg.MaxConcurrentHashes)
	}
	switch {
	case cfg.RefreshTokenTTL == 0:
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	case cfg.RefreshTokenTTL < minRefreshTokenTTL || cfg.RefreshTokenTTL > maxRefreshTokenTTL:
		return nil, fmt.Errorf("accounts.New: refresh token TTL %v out of range %v..%v", cfg.RefreshTokenTTL, minRefreshTokenTTL, maxRefreshTokenTTL)
	}
	if !cfg.RateLimit.Disabled {
		if err := cfg.RateLimit.setDefaults(); err != nil {
			return nil, fmt.Errorf("accounts.New: %w", err)
		}
	}
	var missing []string
	if deps.Store == nil {
		missing = append(missing, "Store")
	}
	if deps.Tokens == nil {
		missing = append(missing, "Tokens")
	}
	if deps.Verify == nil {
		missing = append(missing, "Verify")
	}
	if deps.Homes == nil {
		missing = append(missing, "Homes")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("accounts.New: missing deps: %s", strings.Join(missing, ", "))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("accounts.New: %w", err)
	}
	// The dummy hash uses the configured parameters, so verifying against
	// it costs what verifying a real, current hash costs.
	dummy, err := hashPassword(cfg.Argon2, "livecell timing equaliser")
	if err != nil {
		return nil, fmt.Errorf("accounts.New: %w", err)
	}
	platforms := make(map[string]platformVerifier)
	for provider, v := range map[string]platformVerifier{accountsapi.ProviderSteam: deps.Steam, accountsapi.ProviderEpic: deps.Epic} {
		if v != nil {
			platforms[provider] = v
		}
	}
	return &Service{
		cfg:       cfg,
		log:       deps.Logger,
		store:     deps.Store,
		sessions:  Sessions(deps.Store),
		tokens:    deps.Tokens,
		verify:    deps.Verify,
		homes:     deps.Homes,
		now:       deps.Now,
		metrics:   m,
		platforms: platforms,
		limits:    newLimits(cfg.RateLimit),
		hashSlots: make(chan struct{}, cfg.MaxConcurrentHashes),
		dummyHash: dummy,
	}, nil
}
