package token

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livecell/livecell/internal/apierr"
)

// Causes found by the key lookup; Verify turns them into public messages.
var (
	errMissingKid = errors.New("token has no kid header")
	errUnknownKid = errors.New("kid is not in the key set")
	errCritical   = errors.New("token has a crit header")
)

// Verifier checks tokens against a KeySet's public keys. It is safe for
// concurrent use.
type Verifier struct {
	ks  *KeySet
	now func() time.Time
}

// NewVerifier returns a Verifier for ks (which may be verify-only). now is
// the clock (time.Now when nil).
func NewVerifier(ks *KeySet, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{ks: ks, now: now}
}

// parsed is the payload as read: RegisteredClaims brings the checks of exp,
// nbf, iat, iss and aud.
type parsed struct {
	jwt.RegisteredClaims
	Cell      string `json:"cell"`
	SessionID string `json:"sid"`
	Scope     string `json:"scope"`
}

// Verify checks tok and returns its claims. It accepts only EdDSA tokens
// signed by a key in the set (by kid), issued by Issuer for exactly
// audience, carrying an expiry, within a 30 s clock-skew leeway.
//
// Errors are *apierr.Error: TokenExpired when the token is only expired (the
// client should refresh), InvalidToken otherwise, with a public message that
// says which check failed and the cause wrapped for logs.
func (v *Verifier) Verify(tok, audience string) (Claims, error) {
	if len(tok) > MaxTokenSize {
		return Claims{}, invalid("token too large", fmt.Errorf("%d bytes, limit %d", len(tok), MaxTokenSize))
	}
	if audience == "" {
		return Claims{}, invalid("wrong audience", errors.New("Verify called without an audience"))
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithStrictDecoding(), // one token, one encoding: no malleable trailing bits
	)
	var c parsed
	t, err := p.ParseWithClaims(tok, &c, v.key)
	if err != nil {
		return Claims{}, classify(t, err)
	}
	// WithAudience accepts a token whose aud merely contains ours. livecell
	// issues one audience per token, so anything else is not ours to accept.
	if len(c.Audience) != 1 {
		return Claims{}, invalid("wrong audience", fmt.Errorf("aud %q, want exactly %q", []string(c.Audience), audience))
	}
	if c.Subject == "" {
		return Claims{}, invalid("missing subject", errors.New("empty sub claim"))
	}
	out := Claims{
		Subject:   c.Subject,
		Audience:  c.Audience[0],
		Cell:      c.Cell,
		SessionID: c.SessionID,
		Scopes:    strings.Fields(c.Scope),
		ID:        c.ID,
		ExpiresAt: c.ExpiresAt.Time,
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	return out, nil
}

// key is the jwt.Keyfunc: it runs after the algorithm check and before the
// signature check.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a recipient must reject extensions it does not
	// understand, and livecell understands none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errMissingKid
	}
	pub, ok := v.ks.publicKey(kid)
	if !ok {
		return nil, fmt.Errorf("%w: %q", errUnknownKid, kid)
	}
	return pub, nil
}

// classify maps a jwt error to the public message. Order matters: the
// audience and issuer checks come before expiry, so a token that is both
// expired and misdirected is reported as misdirected, never as "refresh me".
func classify(t *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token", err)
	case t == nil:
		return invalid("malformed token", err)
	case t.Method == nil || t.Method.Alg() != jwt.SigningMethodEdDSA.Alg():
		return invalid("unsupported algorithm", err)
	case errors.Is(err, errCritical):
		return invalid("unsupported critical header", err)
	case errors.Is(err, errMissingKid):
		return invalid("missing key id", err)
	case errors.Is(err, errUnknownKid):
		return invalid("unknown key id", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing required claim", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return apierr.Wrap("token.Verify", apierr.TokenExpired, "token expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("token not yet valid", err)
	default:
		return invalid("invalid token", err)
	}
}

func invalid(msg string, cause error) error {
	return apierr.Wrap("token.Verify", apierr.InvalidToken, msg, cause)
}
