// Package accountsapi is the public contract of a cell's accounts service:
// its HTTP paths, its JSON wire types and a small client. Other components
// (the probe, the load tester, the gateway's wiring) import this package,
// never the service's implementation in cell/accounts.
package accountsapi

import "time"

// HTTP paths of the accounts API.
const (
	PathRegister = "/v1/auth/register" // POST RegisterRequest → 201 AuthResponse
	PathLogin    = "/v1/auth/login"    // POST LoginRequest → 200 AuthResponse
	PathMe       = "/v1/accounts/me"   // GET with "Authorization: Bearer <access token>" → 200 Me
)

// TokenTypeBearer is the only AuthResponse.TokenType: the access token goes
// in an "Authorization: Bearer" header, or in the gateway's Hello frame.
const TokenTypeBearer = "Bearer"

// Limits of development username/password accounts. A username is checked
// after lower-casing, so usernames are unique case-insensitively.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
	// UsernameChars lists the characters a username may hold (after lower-casing).
	UsernameChars = "a-z 0-9 _ . -"
	// Password lengths are in bytes of UTF-8.
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// RegisterRequest creates a development account with a username and password.
type RegisterRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginRequest exchanges a username and password for an access token.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// AuthResponse answers a successful register or login.
type AuthResponse struct {
	PlayerID string `json:"player_id"`
	// HomeCell is the cell that owns the player; the client connects to that
	// cell's gateway (it may differ from the cell that answered a login when
	// the player was moved).
	HomeCell    string `json:"home_cell"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // always TokenTypeBearer
	ExpiresIn   int    `json:"expires_in"` // seconds until AccessToken expires
}

// Me is the caller's own account, answered by GET PathMe and by the gateway
// opcode protocol.OpAccountsMe.
type Me struct {
	PlayerID  string    `json:"player_id"`
	Username  string    `json:"username"`
	HomeCell  string    `json:"home_cell"`
	CreatedAt time.Time `json:"created_at"`
}
