package httpapi

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
)

// MaxResponse bounds how much of a response body a client reads: livecell
// answers are small, and a peer (or something in between) that sends more
// is broken, not to be buffered.
const MaxResponse = 1 << 20

// Call is one JSON request to a livecell HTTP API.
type Call struct {
	Op     string // names the operation in errors ("accountsapi.Login")
	Peer   string // names the service in messages ("accounts service")
	Method string
	URL    string
	Token  string // bearer token; empty sends none
	In     any    // request body; nil sends none
	Out    any    // decoded from a 2xx body; nil ignores the body
}

// Do performs c with hc (nil: http.DefaultClient). Every failure is an
// *apierr.Error: the peer's own code when it answered with an ErrorBody, a
// code derived from the status otherwise, Unavailable when it could not be
// reached, so callers can always switch on the code.
func Do(ctx context.Context, hc *http.Client, c Call) error {
	var body io.Reader
	if c.In != nil {
		b, err := json.Marshal(c.In)
		if err != nil {
			return apierr.Wrap(c.Op, apierr.Internal, "encode request", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return apierr.Wrap(c.Op, apierr.Internal, "build request", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.In != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return apierr.Wrap(c.Op, apierr.Unavailable, c.Peer+" unreachable", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return apierr.Wrap(c.Op, apierr.Unavailable, "reading "+c.Peer+" response", err)
	}
	if len(data) > MaxResponse {
		return apierr.Wrap(c.Op, apierr.Internal, c.Peer+" response too large", fmt.Errorf("more than %d bytes", MaxResponse))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ResponseError(c.Op, resp, data)
	}
	if c.Out == nil { // a 204 answer, or one whose body the caller ignores
		return nil
	}
	if err := json.Unmarshal(data, c.Out); err != nil {
		return apierr.Wrap(c.Op, apierr.Internal, "malformed "+c.Peer+" response", err)
	}
	return nil
}

// ResponseError turns a non-2xx answer into an *apierr.Error. A body that is
// not an ErrorBody with a known code (a proxy's HTML page, say) still yields
// a code derived from the status.
func ResponseError(op string, resp *http.Response, data []byte) *apierr.Error {
	var eb ErrorBody
	_ = json.Unmarshal(data, &eb) // a malformed body falls back below
	code, msg := eb.Code, eb.Message
	if !code.Known() {
		code, msg = StatusCode(resp.StatusCode), ""
	}
	path := ""
	if resp.Request != nil && resp.Request.URL != nil {
		path = resp.Request.URL.Path
	}
	e := apierr.Wrap(op, code, msg, fmt.Errorf("HTTP %d from %s", resp.StatusCode, path))
	e.RetryAfter = RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// StatusCode is the code for an HTTP status that came without one.
func StatusCode(status int) apierr.Code {
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
	default: // 1xx/3xx: livecell clients follow no redirects of their own making
		return apierr.Internal
	}
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func RetryAfter(h string, now time.Time) time.Duration {
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
