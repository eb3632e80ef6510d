package accountsapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/livecell/livecell/internal/httpapi"
)

// Client calls one cell's accounts API. The zero HTTP uses
// http.DefaultClient; deadlines come from the context.
//
// Every error is an *apierr.Error: a non-2xx answer carries the server's code
// and message (and RetryAfter from the Retry-After header); a transport
// failure carries apierr.Unavailable and wraps the cause.
type Client struct {
	BaseURL string // e.g. "http://127.0.0.1:4111"
	HTTP    *http.Client
}

// Register creates an account and returns its first access token.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (AuthResponse, error) {
	var out AuthResponse
	err := c.do(ctx, "accountsapi.Register", http.MethodPost, PathRegister, "", req, &out)
	return out, err
}

// Login exchanges a username and password for an access token.
func (c *Client) Login(ctx context.Context, req LoginRequest) (AuthResponse, error) {
	var out AuthResponse
	err := c.do(ctx, "accountsapi.Login", http.MethodPost, PathLogin, "", req, &out)
	return out, err
}

// SteamLogin signs in with a Steam session ticket (hex), creating the
// account on the first login.
func (c *Client) SteamLogin(ctx context.Context, ticket string) (AuthResponse, error) {
	var out AuthResponse
	err := c.do(ctx, "accountsapi.SteamLogin", http.MethodPost, PathSteamLogin, "", SteamLoginRequest{Ticket: ticket}, &out)
	return out, err
}

// EpicLogin signs in with an Epic Online Services ID token, creating the
// account on the first login.
func (c *Client) EpicLogin(ctx context.Context, idToken string) (AuthResponse, error) {
	var out AuthResponse
	err := c.do(ctx, "accountsapi.EpicLogin", http.MethodPost, PathEpicLogin, "", EpicLoginRequest{IDToken: idToken}, &out)
	return out, err
}

// Refresh exchanges a refresh token for new access and refresh tokens. The
// presented token is spent: keep the returned one.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (AuthResponse, error) {
	var out AuthResponse
	err := c.do(ctx, "accountsapi.Refresh", http.MethodPost, PathRefresh, "", RefreshRequest{RefreshToken: refreshToken}, &out)
	return out, err
}

// Logout revokes refreshToken and every refresh token of the same login. It
// succeeds for tokens that are unknown or already revoked.
func (c *Client) Logout(ctx context.Context, refreshToken string) error {
	return c.do(ctx, "accountsapi.Logout", http.MethodPost, PathLogout, "", LogoutRequest{RefreshToken: refreshToken}, nil)
}

// Link links the platform account of req to the account accessToken belongs
// to and returns the linked identity. Linking an account that is already
// linked to this player succeeds again.
func (c *Client) Link(ctx context.Context, accessToken string, req LinkRequest) (Identity, error) {
	var out Identity
	err := c.do(ctx, "accountsapi.Link", http.MethodPost, PathIdentities, accessToken, req, &out)
	return out, err
}

// Unlink removes the caller's linked account of provider. The server refuses
// to remove the last way to sign in (code conflict).
func (c *Client) Unlink(ctx context.Context, accessToken, provider string) error {
	return c.do(ctx, "accountsapi.Unlink", http.MethodDelete, PathIdentity(provider), accessToken, nil, nil)
}

// Me returns the account that accessToken belongs to.
func (c *Client) Me(ctx context.Context, accessToken string) (Me, error) {
	var out Me
	err := c.do(ctx, "accountsapi.Me", http.MethodGet, PathMe, accessToken, nil, &out)
	return out, err
}

// do sends in (nil: no body) and decodes a 2xx answer into out (nil: the
// body is not read as JSON).
func (c *Client) do(ctx context.Context, op, method, path, token string, in, out any) error {
	return httpapi.Do(ctx, c.HTTP, httpapi.Call{
		Op: op, Peer: "accounts service", Method: method,
		URL: strings.TrimRight(c.BaseURL, "/") + path, Token: token, In: in, Out: out,
	})
}
