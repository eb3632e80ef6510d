// Package epic verifies Epic Online Services ID tokens offline, against the
// signing keys Epic publishes as a JSON Web Key Set.
//
// It follows Epic's "Validating ID Tokens on Backend Without SDK"
// (https://dev.epicgames.com/docs/epic-account-services/auth/auth-interface,
// sections "User Verification Using an ID Token" and "ID Token Structure"):
//
//   - The JWKS endpoint for Epic Account Services (Auth interface) ID tokens
//     is https://api.epicgames.dev/epic/oauth/v2/.well-known/jwks.json
//     (DefaultJWKSURL). EOS Connect ID tokens are signed by other keys,
//     published at https://api.epicgames.dev/auth/v1/oauth/jwks; their sub
//     is a Product User ID, not an Epic Account ID, so one Verifier must
//     only ever be given one kind.
//   - The header carries alg and kid; kid is required.
//   - Verify that alg is present and not "none", the signature against the
//     JWKS, that iss is present and "starts with the base URL of
//     https://api.epicgames.dev", that iat is in the past, exp in the
//     future, and that aud is the client ID the game authenticates with.
//     Then sub, the Epic Account ID, can be trusted.
//   - Other documented claims: dn (display name), appid, pfpid (product),
//     pfsid (sandbox), pfdid (deployment), cty, eat, eadn, pltfm.
//
// Stricter than the documentation, on purpose:
//
//   - Only RS256 is accepted. Epic's keys are RSA and its OpenID metadata
//     lists RS256 as the only ID token algorithm; accepting whatever alg a
//     token names is how HMAC key-confusion attacks work.
//   - "Starts with https://api.epicgames.dev" is taken on a path boundary:
//     iss must be the base or base + "/...", so
//     https://api.epicgames.dev.attacker.example does not pass.
//   - aud must be exactly the client ID, not a list that contains it
//     (OpenID Connect Core 3.1.3.7 rejects untrusted extra audiences).
//   - With Config.DeploymentID set, pfdid must match, so a token minted for
//     another deployment of the same product (say, a dev sandbox) is
//     refused.
//
// The key set is cached and refetched every RefreshInterval (sooner if the
// endpoint's Cache-Control max-age says so, never more often than
// MinRefreshInterval), with If-None-Match when the endpoint gave an ETag. A
// token whose kid is unknown triggers a refetch, at most once per
// MinRefreshInterval: rotated keys are picked up within seconds, but a flood
// of tokens with made-up kids costs Epic one request a minute. A refetch
// that fails keeps the old keys, so logins continue while Epic's endpoint is
// down; concurrent callers share one fetch.
package epic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/internal/apierr"
)

// Documented endpoints and values.
const (
	// DefaultJWKSURL publishes the keys that sign Epic Account Services
	// ID tokens.
	DefaultJWKSURL = "https://api.epicgames.dev/epic/oauth/v2/.well-known/jwks.json"
	// DefaultIssuer is the base every EOS token issuer starts with.
	DefaultIssuer = "https://api.epicgames.dev"
)

const (
	// MaxTokenBytes bounds a token before any parsing. EOS ID tokens are
	// around a kilobyte.
	MaxTokenBytes = 8 << 10
	// Leeway absorbs clock skew between Epic and this cell when checking
	// exp, iat and nbf.
	Leeway = 30 * time.Second

	defaultRefresh    = time.Hour
	defaultMinRefresh = time.Minute
	defaultTimeout    = 10 * time.Second
	maxTimeout        = time.Minute
	// maxDisplayName bounds dn; Epic display names are far shorter.
	maxDisplayName = 128
	// maxSubject bounds sub; Epic Account IDs are 32 hex digits.
	maxSubject = 64
)

// Config configures a Verifier.
type Config struct {
	// JWKSURL is where the signing keys are published (default
	// DefaultJWKSURL).
	JWKSURL string
	// Issuer is the base iss must equal or lie under, on a path boundary
	// (default DefaultIssuer, as Epic documents).
	Issuer string
	// ClientID is the EOS client ID the game signs players in with; aud
	// must be exactly this. Required.
	ClientID string
	// DeploymentID, when set, must equal the pfdid claim.
	DeploymentID string
	// RefreshInterval is how long a fetched key set is used before it is
	// revalidated in the background (default 1h). A Cache-Control max-age
	// from the endpoint shortens it, down to MinRefreshInterval.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches (default
	// 1m). It bounds what unknown kids, and a failing endpoint, can cost.
	MinRefreshInterval time.Duration
	// Timeout bounds one JWKS fetch (default 10s, at most 1m).
	Timeout time.Duration
}

func (c *Config) setDefaults() error {
	if c.JWKSURL == "" {
		c.JWKSURL = DefaultJWKSURL
	}
	if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("JWKSURL %q must be an absolute http(s) URL", c.JWKSURL)
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if u, err := url.Parse(c.Issuer); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("Issuer %q must be an absolute http(s) URL", c.Issuer)
	}
	if c.ClientID == "" || strings.TrimSpace(c.ClientID) != c.ClientID {
		return fmt.Errorf("ClientID %q must be non-empty without surrounding spaces", c.ClientID)
	}
	if strings.TrimSpace(c.DeploymentID) != c.DeploymentID {
		return fmt.Errorf("DeploymentID %q has surrounding spaces", c.DeploymentID)
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = defaultRefresh
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = defaultMinRefresh
	}
	if c.MinRefreshInterval < 0 || c.RefreshInterval < c.MinRefreshInterval {
		return fmt.Errorf("want 0 < MinRefreshInterval (%v) <= RefreshInterval (%v)", c.MinRefreshInterval, c.RefreshInterval)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = defaultTimeout
	case c.Timeout < 0 || c.Timeout > maxTimeout:
		return fmt.Errorf("Timeout %v out of range (0, %v]", c.Timeout, maxTimeout)
	}
	return nil
}

// Verifier verifies EOS ID tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	hc     *http.Client
	now    func() time.Time
	parser *jwt.Parser

	// keys is the current key set, read without locking on every Verify.
	keys atomic.Pointer[keySet]

	mu          sync.Mutex
	inflight    *fetch    // the fetch in progress, shared by all who need it
	lastAttempt time.Time // start of the latest fetch
	lastErr     error     // outcome of the latest finished fetch
}

var _ platform.Verifier = (*Verifier)(nil)

// New validates cfg and returns a Verifier that fetches keys through hc
// (nil means http.DefaultClient) and reads the time from now (nil means
// time.Now).
//
// New fetches the key set once, within ctx. If that fails New still
// succeeds: a cell must start while Epic is unreachable (Steam and password
// logins do not need Epic), and Verify fetches again once
// MinRefreshInterval has passed. Call Refresh to find out whether the
// endpoint is reachable.
func New(ctx context.Context, cfg Config, hc *http.Client, now func() time.Time) (*Verifier, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("epic.New: %w", err)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		cfg: cfg,
		hc:  hc,
		now: now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(now),
			jwt.WithIssuedAt(),
			jwt.WithExpirationRequired(),
			jwt.WithAudience(cfg.ClientID),
			jwt.WithStrictDecoding(),
		),
	}
	_ = v.Refresh(ctx) // see above: a failure here is not fatal
	return v, nil
}

// Refresh fetches the key set now, or waits for the fetch in progress, and
// reports its outcome. It ignores MinRefreshInterval: it is for start-up
// and operators, not for the login path.
func (v *Verifier) Refresh(ctx context.Context) error {
	f := v.startFetch(ctx, true)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("epic: JWKS fetch: %w", ctx.Err())
	}
}

// idClaims are the ID token claims we read. Registered claims are
// validated by the jwt parser; the rest by Verify.
type idClaims struct {
	jwt.RegisteredClaims
	DisplayName  string `json:"dn"`
	DeploymentID string `json:"pfdid"`
}

// Verify checks an EOS ID token and returns the Epic account it names.
func (v *Verifier) Verify(ctx context.Context, idToken string) (platform.Identity, error) {
	const op = "epic.Verify"
	switch {
	case idToken == "":
		return platform.Identity{}, platform.BadTicket(op, "epic id token is required")
	case len(idToken) > MaxTokenBytes:
		return platform.Identity{}, platform.BadTicket(op, fmt.Sprintf("epic id token is longer than %d bytes", MaxTokenBytes))
	case strings.Count(idToken, ".") != 2:
		return platform.Identity{}, platform.BadTicket(op, "epic id token is not a JWT")
	}

	var c idClaims
	_, err := v.parser.ParseWithClaims(idToken, &c, func(t *jwt.Token) (any, error) {
		return v.key(ctx, op, t)
	})
	if err != nil {
		// key's own errors say whether Epic or the token is at fault.
		if e, ok := apierr.From(err); ok {
			return platform.Identity{}, e
		}
		return platform.Identity{}, platform.Rejected(op, fmt.Errorf("epic id token: %w", err))
	}
	if err := v.checkClaims(&c); err != nil {
		return platform.Identity{}, platform.Rejected(op, fmt.Errorf("epic id token: %w", err))
	}
	id := platform.Identity{Provider: platform.ProviderEpic, Subject: c.Subject}
	id.DisplayName = displayName(c.DisplayName)
	return id, nil
}

// displayName returns dn if it is fit to show and store. A display name is
// a hint for a new account's name, never an identifier, so one that would
// need repair (too long, control characters that could forge log lines,
// surrounding spaces) is dropped rather than mended.
func displayName(dn string) string {
	if len(dn) > maxDisplayName || !utf8.ValidString(dn) || strings.TrimSpace(dn) != dn {
		return ""
	}
	for _, r := range dn {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return dn
}

// checkClaims checks what the jwt parser does not: issuer on a path
// boundary, a single audience, iat present, the subject's shape and the
// deployment.
func (v *Verifier) checkClaims(c *idClaims) error {
	if c.Issuer != v.cfg.Issuer && !strings.HasPrefix(c.Issuer, v.cfg.Issuer+"/") {
		return fmt.Errorf("issuer %q is not under %q", truncate(c.Issuer, 100), v.cfg.Issuer)
	}
	if len(c.Audience) != 1 {
		return fmt.Errorf("%d audiences, want exactly the client id", len(c.Audience))
	}
	if c.IssuedAt == nil {
		return errors.New("no iat")
	}
	if err := checkSubject(c.Subject); err != nil {
		return err
	}
	if v.cfg.DeploymentID != "" && c.DeploymentID != v.cfg.DeploymentID {
		return fmt.Errorf("deployment %q, want %q", truncate(c.DeploymentID, 100), v.cfg.DeploymentID)
	}
	return nil
}

// checkSubject bounds sub before it becomes a database key. Epic Account
// IDs are 32 hex digits; this allows any short ASCII id so that a format
// change at Epic does not lock players out, while the signature is what
// vouches for it.
func checkSubject(s string) error {
	if s == "" || len(s) > maxSubject {
		return fmt.Errorf("sub has %d bytes, want 1..%d", len(s), maxSubject)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return fmt.Errorf("sub %q has a character outside [0-9A-Za-z_-]", truncate(s, maxSubject))
		}
	}
	return nil
}

// key finds the public key for t, fetching the key set if t names a kid we
// do not know. Its errors are *apierr.Error: Rejected when the token is at
// fault, Unavailable when we could not find out.
func (v *Verifier) key(ctx context.Context, op string, t *jwt.Token) (any, error) {
	// The parser already allows only RS256; checking again costs nothing
	// and keeps this function safe on its own.
	if t.Method != jwt.SigningMethodRS256 {
		return nil, platform.Rejected(op, fmt.Errorf("alg %v not accepted", t.Header["alg"]))
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" || len(kid) > maxKID {
		return nil, platform.Rejected(op, errors.New("epic id token has no usable kid"))
	}
	ks := v.keys.Load()
	if ks != nil {
		if k, ok := ks.keys[kid]; ok {
			if !v.now().Before(ks.refreshAt) {
				// Stale: revalidate in the background and use the key
				// meanwhile, so a slow or failing endpoint never holds up
				// logins with known keys.
				v.startFetch(ctx, false)
			}
			return k, nil
		}
	}

	// Unknown kid: perhaps Epic rotated its keys. Fetch, unless we did so
	// less than MinRefreshInterval ago.
	f := v.startFetch(ctx, false)
	if f == nil {
		v.mu.Lock()
		lastErr := v.lastErr
		v.mu.Unlock()
		if ks == nil || lastErr != nil {
			// We do not know the current keys: say so, rather than blame
			// a token that may be fine.
			return nil, platform.Unavailable(op, fmt.Errorf("epic JWKS unavailable (next fetch after %v): %w", v.cfg.MinRefreshInterval, lastErrOr(lastErr)))
		}
		return nil, platform.Rejected(op, fmt.Errorf("unknown kid %q (keys fetched recently)", truncate(kid, 64)))
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, platform.Unavailable(op, fmt.Errorf("waiting for epic JWKS: %w", ctx.Err()))
	}
	if f.err != nil {
		return nil, platform.Unavailable(op, f.err)
	}
	if k, ok := v.keys.Load().keys[kid]; ok {
		return k, nil
	}
	return nil, platform.Rejected(op, fmt.Errorf("unknown kid %q (not in freshly fetched keys)", truncate(kid, 64)))
}

func lastErrOr(err error) error {
	if err != nil {
		return err
	}
	return errors.New("no key set yet")
}

// fetch is one JWKS fetch in progress; done is closed when err is set.
type fetch struct {
	done chan struct{}
	err  error
}

// startFetch returns the fetch in progress, or starts one. Unless force is
// set it returns nil instead of starting a fetch within
// MinRefreshInterval of the last one.
//
// The fetch runs on its own goroutine, detached from ctx's cancellation
// (but bounded by Config.Timeout), so that one impatient caller cannot fail
// the fetch for everyone waiting on it, and a stale-key revalidation
// outlives the login that noticed it.
func (v *Verifier) startFetch(ctx context.Context, force bool) *fetch {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight != nil {
		return v.inflight
	}
	now := v.now()
	if !force && !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.cfg.MinRefreshInterval {
		return nil
	}
	f := &fetch{done: make(chan struct{})}
	v.inflight, v.lastAttempt = f, now
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.Timeout)
	go func() {
		defer cancel()
		err := v.fetchKeys(fctx, v.keys.Load())
		v.mu.Lock()
		v.inflight, v.lastErr = nil, err
		v.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
