package token_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
)

// FuzzVerify feeds arbitrary strings to Verify. The key set is the fixed
// RFC 8037 key, so seeds built with it (committed under testdata/fuzz) carry
// a known kid and take the fuzzer past the key lookup into signature and
// claims checks. No input may panic and none may verify: every seed is
// expired, forged or malformed, and producing a valid Ed25519 signature by
// mutation is not something a fuzzer can do.
func FuzzVerify(f *testing.F) {
	key := rfcKey(f)
	ks := keySet(f, key)
	v := token.NewVerifier(ks, clock(epoch))

	// Seeds with a valid signature are issued an hour before they expire
	// relative to the verifier's clock, so they are real tokens that fail.
	expired, _, err := signer(f, ks, epoch.Add(-2*time.Hour)).IssuePlayer("p1", "eu-1", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(expired, ".")
	header := map[string]any{"alg": "EdDSA", "kid": ks.SigningKeyID(), "typ": "JWT"}
	forged := build(f, header, validClaims(epoch), func(in []byte) []byte { return ed25519.Sign(newKey(f), in) })
	for _, s := range []string{
		expired,
		forged,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		seg(f, map[string]any{"alg": "none"}) + "." + parts[1] + ".",
		"", ".", "..", "a.b.c", "eyJ9.eyJ9.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		claims, err := v.Verify(tok, token.AudiencePlayer)
		if err == nil {
			t.Fatalf("Verify(%q) accepted random input as %+v", tok, claims)
		}
		if code := apierr.CodeOf(err); code != apierr.InvalidToken && code != apierr.TokenExpired {
			t.Fatalf("Verify(%q) returned code %q, want invalid_token or token_expired (err: %v)", tok, code, err)
		}
	})
}
