// Package accountsapi is the public contract of a cell's accounts service:
// its HTTP paths, its JSON wire types and a small client. Other components
// (the probe, the load tester, the gateway's wiring) import this package,
// never the service's implementation in cell/accounts.
package accountsapi

import (
	"net/url"
	"time"
)

// HTTP paths of the accounts API. "Bearer" marks the endpoints that take an
// "Authorization: Bearer <access token>" header.
const (
	PathRegister   = "/v1/auth/register"          // POST RegisterRequest → 201 AuthResponse
	PathLogin      = "/v1/auth/login"             // POST LoginRequest → 200 AuthResponse
	PathSteamLogin = "/v1/auth/steam"             // POST SteamLoginRequest → 201 (new account) or 200 AuthResponse
	PathEpicLogin  = "/v1/auth/epic"              // POST EpicLoginRequest → 201 (new account) or 200 AuthResponse
	PathRefresh    = "/v1/auth/refresh"           // POST RefreshRequest → 200 AuthResponse
	PathLogout     = "/v1/auth/logout"            // POST LogoutRequest → 204
	PathMe         = "/v1/accounts/me"            // Bearer; GET → 200 Me
	PathIdentities = "/v1/accounts/me/identities" // Bearer; POST LinkRequest → 201 (linked) or 200 (already linked) Identity
	// PathIdentities + "/{provider}": Bearer; DELETE → 204. See PathIdentity.
)

// PathIdentity is the path that unlinks the caller's account of provider.
func PathIdentity(provider string) string { return PathIdentities + "/" + url.PathEscape(provider) }

// Identity providers: the platforms whose accounts can sign in and be
// linked. A player has at most one linked account per provider.
const (
	ProviderSteam = "steam" // Steam session tickets (ISteamUserAuth/AuthenticateUserTicket)
	ProviderEpic  = "epic"  // Epic Online Services ID tokens
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

// SteamLoginRequest signs in with a Steam session ticket: the hex encoding of
// the bytes ISteamUser::GetAuthSessionTicket (or GetAuthTicketForWebApi)
// returned to the game client. The first login with an unknown Steam account
// creates a player.
type SteamLoginRequest struct {
	Ticket string `json:"ticket"`
}

// EpicLoginRequest signs in with an Epic Online Services ID token (a JWT from
// EOS_Connect_CopyIdToken or EOS_Auth_CopyIdToken). The first login with an
// unknown Epic account creates a player.
type EpicLoginRequest struct {
	IDToken string `json:"id_token"`
}

// RefreshRequest exchanges a refresh token for a new access token and a new
// refresh token. Each refresh token works once: presenting one again revokes
// every token descended from the same login, so a client must always keep the
// newest one.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// LogoutRequest revokes a refresh token and every token of its login. Access
// tokens already issued stay valid until they expire (at most 15 minutes).
type LogoutRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// LinkRequest links a platform account to the caller's account: Ticket for
// ProviderSteam, IDToken for ProviderEpic (the other one must be empty).
type LinkRequest struct {
	Provider string `json:"provider"`
	Ticket   string `json:"ticket,omitempty"`
	IDToken  string `json:"id_token,omitempty"`
}

// AuthResponse answers a successful register, login or refresh.
type AuthResponse struct {
	PlayerID string `json:"player_id"`
	// HomeCell is the cell that owns the player; the client connects to that
	// cell's gateway (it may differ from the cell that answered a login when
	// the player was moved).
	HomeCell    string `json:"home_cell"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // always TokenTypeBearer
	ExpiresIn   int    `json:"expires_in"` // seconds until AccessToken expires
	// RefreshToken gets the next AccessToken from PathRefresh without the
	// player's credentials. It is a secret: store it like a password.
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int    `json:"refresh_expires_in"` // seconds until RefreshToken expires
	// NewAccount is true when this call created the account (a registration
	// or a first platform login), so the game can show its first-run flow.
	NewAccount bool `json:"new_account,omitempty"`
}

// Me is the caller's own account, answered by GET PathMe and by the gateway
// opcode protocol.OpAccountsMe.
type Me struct {
	PlayerID string `json:"player_id"`
	// Username is the sign-in name of a password account. An account created
	// by a platform login gets a generated handle "<provider>#<random>"
	// instead: registration never accepts '#', so such handles can neither
	// collide with a chosen username nor be used to log in with a password.
	Username  string    `json:"username"`
	HomeCell  string    `json:"home_cell"`
	CreatedAt time.Time `json:"created_at"`
	// HasPassword reports whether the account can sign in with its username
	// and a password.
	HasPassword bool `json:"has_password"`
	// Identities are the linked platform accounts, oldest first; never null.
	Identities []Identity `json:"identities"`
}

// Identity is a platform account linked to a player.
type Identity struct {
	Provider string `json:"provider"` // ProviderSteam or ProviderEpic
	// Subject is the platform's account id (SteamID64, Epic Account ID).
	Subject string `json:"subject"`
	// DisplayName is the platform name seen when the account was linked,
	// when the platform gives one.
	DisplayName string    `json:"display_name,omitempty"`
	LinkedAt    time.Time `json:"linked_at"`
}
