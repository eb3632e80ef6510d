package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signer issues tokens with a KeySet's signing key. It is safe for
// concurrent use.
type Signer struct {
	key ed25519.PrivateKey
	// prefix is the encoded header and its dot. The header is the same for
	// every token of a key, so it is encoded once: issuing a token costs one
	// small JSON encoding and one Ed25519 signature.
	prefix string
	now    func() time.Time
}

// issued is the payload as written. "aud" is a single string, which RFC 7519
// allows and every JWT library reads.
type issued struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	Cell      string `json:"cell,omitempty"`
	SessionID string `json:"sid,omitempty"`
	Scope     string `json:"scope,omitempty"`
	ID        string `json:"jti"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ExpiresAt int64  `json:"exp"`
}

// NewSigner returns a Signer for ks, which must hold a private key. now is
// the clock (time.Now when nil), replaceable in tests.
func NewSigner(ks *KeySet, now func() time.Time) (*Signer, error) {
	if ks == nil || !ks.CanSign() {
		return nil, errors.New("token.NewSigner: key set has no signing key")
	}
	if now == nil {
		now = time.Now
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{"EdDSA", ks.signKid, "JWT"})
	if err != nil {
		return nil, fmt.Errorf("token.NewSigner: %w", err)
	}
	return &Signer{key: ks.signer, prefix: base64.RawURLEncoding.EncodeToString(header) + ".", now: now}, nil
}

// IssuePlayer issues a player access token naming the player's home cell.
func (s *Signer) IssuePlayer(playerID, homeCell string, ttl time.Duration) (string, time.Time, error) {
	if playerID == "" {
		return "", time.Time{}, errors.New("token.IssuePlayer: empty player id")
	}
	return s.issue("token.IssuePlayer", issued{Subject: playerID, Audience: AudiencePlayer, Cell: homeCell}, ttl)
}

// IssueServer issues a token for a service or dedicated server. Scopes say
// what it may do; they are written space-separated, so none may contain
// whitespace.
func (s *Signer) IssueServer(subject string, scopes []string, ttl time.Duration) (string, time.Time, error) {
	if subject == "" {
		return "", time.Time{}, errors.New("token.IssueServer: empty subject")
	}
	for _, sc := range scopes {
		if sc == "" || strings.ContainsFunc(sc, unicode.IsSpace) {
			return "", time.Time{}, fmt.Errorf("token.IssueServer: invalid scope %q: must be non-empty without whitespace", sc)
		}
	}
	return s.issue("token.IssueServer", issued{Subject: subject, Audience: AudienceServer, Scope: strings.Join(scopes, " ")}, ttl)
}

// IssueResume issues a token that lets the player resume gateway session
// sessionID on cell after a reconnect.
func (s *Signer) IssueResume(playerID, sessionID, cell string, ttl time.Duration) (string, time.Time, error) {
	if playerID == "" || sessionID == "" {
		return "", time.Time{}, errors.New("token.IssueResume: empty player or session id")
	}
	return s.issue("token.IssueResume", issued{Subject: playerID, Audience: AudienceResume, SessionID: sessionID, Cell: cell}, ttl)
}

func (s *Signer) issue(op string, c issued, ttl time.Duration) (string, time.Time, error) {
	// exp has one-second resolution; a shorter ttl would be expired or
	// rounded to nothing.
	if ttl < time.Second {
		return "", time.Time{}, fmt.Errorf("%s: ttl %v is below one second", op, ttl)
	}
	now := s.now()
	exp := time.Unix(now.Add(ttl).Unix(), 0)
	var jti [16]byte
	rand.Read(jti[:]) // never fails since Go 1.24
	c.Issuer = Issuer
	c.ID = base64.RawURLEncoding.EncodeToString(jti[:])
	c.IssuedAt, c.NotBefore, c.ExpiresAt = now.Unix(), now.Unix(), exp.Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(ed25519.SignatureSize))
	buf = append(buf, s.prefix...)
	buf = enc.AppendEncode(buf, payload)
	// Ed25519 signatures are deterministic (RFC 8032), so curve25519-voi
	// writes the same bytes crypto/ed25519 would (TestSignerMatchesStdlib),
	// in about 60% of the time on this machine class: signing is the
	// largest single cost of a login after the network (docs/benchmarks.md).
	sig := voied25519.Sign(voied25519.PrivateKey(s.key), buf)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), exp, nil
}
