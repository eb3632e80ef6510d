// Package token issues and verifies livecell's access tokens: Ed25519-signed
// JWTs (alg EdDSA) that any component can verify offline with the public
// keys alone.
//
// Three audiences keep the kinds apart: player access tokens, server
// (service and dedicated-server) tokens carrying scopes, and session resume
// tokens. A token verifies only for the audience it was issued for, so a
// player token can never pass as a server token.
//
// Every token names its key in the "kid" header (the RFC 7638 thumbprint of
// the public key). Rotation is therefore: prepend a new key to the PEM file,
// roll it out, and the old key keeps verifying the tokens it signed until
// they expire; then drop it.
package token

import (
	"slices"
	"time"
)

// Token constants shared by every issuer and verifier.
const (
	Issuer         = "livecell"
	AudiencePlayer = "livecell:player"
	AudienceServer = "livecell:server"
	AudienceResume = "livecell:resume"
)

// MaxTokenSize bounds what Verify will parse; anything larger is rejected
// unread, so an attacker cannot make verification cost more than a real
// token does. Real tokens are a few hundred bytes.
const MaxTokenSize = 4096

// Leeway tolerates clock skew between the issuing and verifying machines.
const Leeway = 30 * time.Second

// Claims is what a verified token says.
type Claims struct {
	Subject   string    // player id, or the server's name for server tokens
	Audience  string    // one of the Audience* constants
	Cell      string    // "cell": the player's home cell
	SessionID string    // "sid": the gateway session a resume token resumes
	Scopes    []string  // "scope": space-separated in JSON; server tokens
	ID        string    // "jti": unique per token
	IssuedAt  time.Time // "iat"
	ExpiresAt time.Time // "exp"
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }
