package accountsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// maxResponse bounds how much of a response body the client reads: accounts
// answers are a few hundred bytes, and a misbehaving peer must not make a
// load-test bot buffer megabytes.
const maxResponse = 1 << 20

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
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return apierr.Wrap(op, apierr.Internal, "encode request", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return apierr.Wrap(op, apierr.Internal, "build request", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", TokenTypeBearer+" "+token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return apierr.Wrap(op, apierr.Unavailable, "accounts service unreachable", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return apierr.Wrap(op, apierr.Unavailable, "reading accounts response", err)
	}
	if len(data) > maxResponse {
		return apierr.Wrap(op, apierr.Internal, "accounts response too large", fmt.Errorf("more than %d bytes", maxResponse))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(op, resp, data)
	}
	if out == nil { // a 204 answer, or one whose body the caller ignores
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apierr.Wrap(op, apierr.Internal, "malformed accounts response", err)
	}
	return nil
}

// responseError turns a non-2xx answer into an *apierr.Error. A body that is
// not an ErrorBody with a known code (a proxy's HTML page, say) still yields
// a code derived from the status, so callers can always switch on the code.
func responseError(op string, resp *http.Response, data []byte) error {
	var eb httpapi.ErrorBody
	_ = json.Unmarshal(data, &eb) // a malformed body falls back below
	code, msg := eb.Code, eb.Message
	if !code.Known() {
		code, msg = statusCode(resp.StatusCode), ""
	}
	e := apierr.Wrap(op, code, msg, fmt.Errorf("HTTP %d from %s", resp.StatusCode, resp.Request.URL.Path))
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

func statusCode(status int) apierr.Code {
	switch {
	case status == http.StatusUnauthorized:
		return apierr.Unauthenticated
	case status == http.StatusForbidden:
		return apierr.PermissionDenied
	case status == http.StatusNotFound:
		return apierr.NotFound
	case status == http.StatusConflict:
		return apierr.Conflict
	case status == http.StatusTooManyRequests:
		return apierr.RateLimited
	case status == http.StatusRequestEntityTooLarge:
		return apierr.PayloadTooLarge
	case status == http.StatusGatewayTimeout:
		return apierr.Timeout
	case status >= 500:
		return apierr.Unavailable
	case status >= 400:
		return apierr.BadRequest
	default: // 1xx/3xx: the client follows no redirects of its own making
		return apierr.Internal
	}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
