// Package steam verifies Steam session tickets with the Steamworks Web API,
// ISteamUserAuth/AuthenticateUserTicket.
//
// The format is Valve's documented one
// (https://partner.steamgames.com/doc/webapi/ISteamUserAuth#AuthenticateUserTicket):
//
//	GET https://partner.steam-api.com/ISteamUserAuth/AuthenticateUserTicket/v1/
//	    ?key=<publisher Web API key>&appid=<uint32>&ticket=<hex>[&identity=<string>]
//
// The ticket is the binary from GetAuthTicketForWebApi, hex encoded. When
// the client passed an identity string to GetAuthTicketForWebApi, the same
// string must be sent, and only tickets made with it authenticate. The
// publisher key must never reach a client, which is why this runs here.
//
// Success and failure are both HTTP 200 with a JSON body (the success shape
// as in Valve's docs and client libraries such as steam-rs; the error shape
// as reported in e.g. github.com/garhow/steam-rs/pull/26 and
// github.com/Noxime/steamworks-rs/issues/142):
//
//	{"response":{"params":{"result":"OK","steamid":"7656…","ownersteamid":"7656…",
//	                       "vacbanned":false,"publisherbanned":false}}}
//	{"response":{"error":{"errorcode":101,"errordesc":"Invalid ticket"}}}
//
// How answers map to errors (codes from package platform):
//
//   - params with result "OK" and a valid individual SteamID64: success.
//     publisherbanned refuses the login (permission_denied); vacbanned and
//     a differing ownersteamid (Family Sharing) are reported as
//     platform.Flags, because VAC bans are per game family and are for the
//     game to weigh.
//   - an error object, or a result other than "OK": invalid_credentials.
//   - anything else (transport error, timeout, non-200 status, oversized,
//     non-JSON or unexpected JSON, a malformed steamid): unavailable. An
//     answer we cannot fully read is never taken as success.
//
// Steam returns no display name here, so Identity.DisplayName is empty.
//
// The HTTP client is hand-rolled (conn.go): the call is made on every
// platform login, and net/http's Transport passes each round trip through
// two goroutines of its own, which on a 2-core machine measured 46–60 µs of
// CPU per loopback call against 31–39 µs for doing the I/O on the caller's
// goroutine. It keeps a pool of keep-alive conns, writes a request built
// once (but for the ticket) and parses the answer with http.ReadResponse.
// It does not do what the endpoint does not need: it speaks HTTP/1.1 only,
// takes no proxy from the environment (HTTPS_PROXY and the like are
// ignored; a proxy that terminates TLS can be named in BaseURL with its CA
// in Config.TLS), and never follows redirects.
package steam

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/livecell/livecell/cell/accounts/platform"
)

// DefaultBaseURL is the partner Web API host that accepts publisher keys.
const DefaultBaseURL = "https://partner.steam-api.com"

// Path is the AuthenticateUserTicket endpoint under the base URL.
const Path = "/ISteamUserAuth/AuthenticateUserTicket/v1/"

// MaxTicketBytes bounds a ticket before it is sent anywhere. Web API
// tickets are a few hundred bytes; the Steamworks examples size ticket
// buffers at 1024 bytes, so anything longer is not a ticket.
const MaxTicketBytes = 1024

const (
	defaultTimeout = 5 * time.Second
	maxTimeout     = time.Minute
	// maxBody bounds what we read of an answer; real ones are ~200 bytes.
	maxBody = 64 << 10
	// maxRetryAfter caps a Retry-After from Steam that we pass on.
	maxRetryAfter = time.Minute
	// maxErrDesc caps how much of Steam's error text reaches the logs.
	maxErrDesc = 200
)

// Config configures a Verifier.
type Config struct {
	// BaseURL is the Web API host (default DefaultBaseURL). Tests point
	// it at a steamtest.Server.
	BaseURL string
	// AppID is the game's Steam app id.
	AppID uint32
	// PublisherKey is the Steamworks Web API publisher key. It is a
	// secret: load it from the environment or a file, never from cells.yaml.
	// Config's String, GoString and LogValue redact it.
	PublisherKey string
	// Identity, when set, is the identity string clients pass to
	// GetAuthTicketForWebApi; Steam then accepts only tickets made for it,
	// so a ticket made for another service cannot be replayed here.
	Identity string
	// Timeout bounds one call to Steam (default 5s, at most 1m).
	Timeout time.Duration
	// TLS, when set, configures TLS to an https BaseURL: RootCAs for a
	// private CA or a TLS-terminating proxy, or a test server's
	// certificate. It is cloned; an empty ServerName becomes BaseURL's
	// host, and TLS 1.2 is the least accepted. Nil means the system roots.
	TLS *tls.Config
}

// String describes c without its publisher key.
func (c Config) String() string {
	return fmt.Sprintf("steam.Config{BaseURL:%q AppID:%d PublisherKey:%s Identity:%q Timeout:%v}",
		c.BaseURL, c.AppID, redact(c.PublisherKey), c.Identity, c.Timeout)
}

// GoString keeps %#v from printing the publisher key.
func (c Config) GoString() string { return c.String() }

// LogValue keeps slog from printing the publisher key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Uint64("app_id", uint64(c.AppID)),
		slog.String("publisher_key", redact(c.PublisherKey)),
		slog.String("identity", c.Identity),
		slog.Duration("timeout", c.Timeout),
	)
}

func redact(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return "(redacted)"
}

// Verifier verifies Steam Web API tickets. It is safe for concurrent use.
type Verifier struct {
	c       *client
	timeout time.Duration
	// where names the endpoint in errors, without the query (which holds
	// the key and the ticket).
	where string
}

var _ platform.Verifier = (*Verifier)(nil)

// New validates cfg and returns a Verifier. It dials nothing: conns to
// Steam are made by the first calls and then kept (see the package doc).
//
// Redirects are never followed: the request URL carries the publisher key,
// and following a redirect elsewhere would hand it over.
func New(cfg Config) (*Verifier, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		shown := cfg.BaseURL
		if base != nil {
			shown = base.Redacted()
		}
		return nil, fmt.Errorf("steam.New: BaseURL %q must be an absolute http(s) URL without credentials or query", shown)
	}
	if cfg.AppID == 0 {
		return nil, errors.New("steam.New: AppID is required")
	}
	switch {
	case cfg.PublisherKey == "":
		return nil, errors.New("steam.New: PublisherKey is required")
	case strings.TrimSpace(cfg.PublisherKey) != cfg.PublisherKey || strings.ContainsAny(cfg.PublisherKey, " \t\r\n"):
		// Typically a trailing newline from a secret file; say so without
		// printing the key.
		return nil, errors.New("steam.New: PublisherKey contains whitespace")
	}
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	case cfg.Timeout < 0 || cfg.Timeout > maxTimeout:
		return nil, fmt.Errorf("steam.New: Timeout %v out of range (0, %v]", cfg.Timeout, maxTimeout)
	}
	q := url.Values{"key": {cfg.PublisherKey}, "appid": {strconv.FormatUint(uint64(cfg.AppID), 10)}}
	if cfg.Identity != "" {
		q.Set("identity", cfg.Identity)
	}
	// The request target up to and including "ticket=": the key, app id
	// and identity never change, so only the ticket is added per call.
	target := base.EscapedPath() + Path + "?" + q.Encode() + "&ticket="
	c, err := newClient(base, target, cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("steam.New: %w", err)
	}
	return &Verifier{c: c, timeout: cfg.Timeout, where: base.String() + Path}, nil
}

// Close closes the conns to Steam that are idle, and those that calls in
// flight finish with. A Verify after Close still works, on a conn of its
// own.
func (v *Verifier) Close() { v.c.close() }

// answer is the documented response envelope. Unknown members are
// ignored (Valve may add some); the ones we use must have their documented
// types or decoding fails and the answer counts as malformed.
type answer struct {
	Response *struct {
		Params *struct {
			Result          string `json:"result"`
			SteamID         string `json:"steamid"`
			OwnerSteamID    string `json:"ownersteamid"`
			VACBanned       bool   `json:"vacbanned"`
			PublisherBanned bool   `json:"publisherbanned"`
		} `json:"params"`
		Error *struct {
			Code *int   `json:"errorcode"`
			Desc string `json:"errordesc"`
		} `json:"error"`
	} `json:"response"`
}

// Verify asks Steam whose ticket this is. ticket is the hex encoding of the
// GetAuthTicketForWebApi ticket.
func (v *Verifier) Verify(ctx context.Context, ticket string) (platform.Identity, error) {
	const op = "steam.Verify"
	if err := checkTicket(ticket); err != nil {
		return platform.Identity{}, platform.BadTicket(op, err.Error())
	}

	deadline := time.Now().Add(v.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Errors from get name no URL: the URL carries the key and the ticket.
	resp, body, err := v.c.get(ctx, deadline, ticket)
	if err != nil {
		return platform.Identity{}, platform.Unavailable(op, fmt.Errorf("GET %s: %w", v.where, err))
	}
	if resp.StatusCode != http.StatusOK {
		e := platform.Unavailable(op, fmt.Errorf("GET %s: HTTP %d", v.where, resp.StatusCode))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
		}
		return platform.Identity{}, e
	}
	if len(body) > maxBody {
		return platform.Identity{}, platform.Unavailable(op, fmt.Errorf("GET %s: answer exceeds %d bytes", v.where, maxBody))
	}
	return parse(op, body)
}

// parse reads a 200 answer. Split from Verify so that the decision table is
// testable without a server (see the fuzz test).
func parse(op string, body []byte) (platform.Identity, error) {
	var a answer
	// Unmarshal, not a Decoder: it refuses data after the object too, and
	// costs less on the login path.
	if err := json.Unmarshal(body, &a); err != nil {
		return platform.Identity{}, platform.Unavailable(op, fmt.Errorf("malformed steam answer: %w", err))
	}
	r := a.Response
	switch {
	case r == nil:
		return platform.Identity{}, platform.Unavailable(op, errors.New("malformed steam answer: no response object"))
	case r.Params != nil && r.Error != nil:
		return platform.Identity{}, platform.Unavailable(op, errors.New("malformed steam answer: both params and error"))
	case r.Error != nil:
		if r.Error.Code == nil {
			return platform.Identity{}, platform.Unavailable(op, errors.New("malformed steam answer: error without errorcode"))
		}
		return platform.Identity{}, platform.Rejected(op, fmt.Errorf("steam rejected the ticket: errorcode %d: %q",
			*r.Error.Code, truncate(r.Error.Desc, maxErrDesc)))
	case r.Params == nil:
		return platform.Identity{}, platform.Unavailable(op, errors.New("malformed steam answer: neither params nor error"))
	}
	p := r.Params
	if p.Result != "OK" {
		return platform.Identity{}, platform.Rejected(op, fmt.Errorf("steam answered result %q", truncate(p.Result, maxErrDesc)))
	}
	if err := checkSteamID(p.SteamID); err != nil {
		return platform.Identity{}, platform.Unavailable(op, fmt.Errorf("malformed steam answer: steamid: %w", err))
	}
	id := platform.Identity{Provider: platform.ProviderSteam, Subject: p.SteamID}
	if p.OwnerSteamID != "" {
		if err := checkSteamID(p.OwnerSteamID); err != nil {
			return platform.Identity{}, platform.Unavailable(op, fmt.Errorf("malformed steam answer: ownersteamid: %w", err))
		}
		if p.OwnerSteamID != p.SteamID {
			id.Flags |= platform.FlagFamilyShared
		}
	}
	if p.VACBanned {
		id.Flags |= platform.FlagVACBanned
	}
	if p.PublisherBanned {
		return platform.Identity{}, platform.Banned(op, fmt.Errorf("steam reports a publisher ban on %s", p.SteamID))
	}
	return id, nil
}

// checkTicket rejects what cannot be a hex ticket before it costs a call
// (and a share of Steam's rate limit).
func checkTicket(t string) error {
	switch {
	case t == "":
		return errors.New("steam ticket is required")
	case len(t) > 2*MaxTicketBytes:
		return fmt.Errorf("steam ticket is longer than %d bytes", MaxTicketBytes)
	case len(t)%2 != 0:
		return errors.New("steam ticket must be hex encoded")
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return errors.New("steam ticket must be hex encoded")
		}
	}
	return nil
}

// SteamID64 layout (Valve's CSteamID): universe in bits 56-63, account
// type in 52-55, instance in 32-51, account number in 0-31.
const (
	universePublic    = 1
	accountIndividual = 1
)

// checkSteamID accepts the decimal SteamID64 of an individual account in
// the public universe: the only kind that can own a login ticket. That is
// always 17 digits (76561197960265729 and up).
func checkSteamID(s string) error {
	if len(s) != 17 {
		return fmt.Errorf("%q is not a 17-digit SteamID64", truncate(s, 40))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%q is not a 17-digit SteamID64", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if n>>56 != universePublic || (n>>52)&0xF != accountIndividual || uint32(n) == 0 {
		return fmt.Errorf("%s is not an individual public-universe SteamID64", s)
	}
	return nil
}

// retryAfter reads a Retry-After in seconds; dates and nonsense give 0
// (the client's default back-off).
func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, maxRetryAfter)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
