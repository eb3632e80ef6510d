package accounts

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestRefreshSecretRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, hash := newRefreshSecret()
		if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
			t.Fatalf("token %q: want 43 unpadded base64url characters", tok)
		}
		got, ok := refreshDigest(tok)
		if !ok || got != hash {
			t.Fatalf("refreshDigest(%q) = %q, %v; want %q, true", tok, got, ok, hash)
		}
		if seen[tok] {
			t.Fatalf("token %q issued twice", tok)
		}
		seen[tok] = true
	}
}

func FuzzRefreshDigest(f *testing.F) {
	tok, _ := newRefreshSecret()
	for _, s := range []string{tok, "", strings.Repeat("A", 43), strings.Repeat("A", 42) + "B", strings.Repeat("+", 43), tok + "=", "x'); DROP TABLE refresh_tokens;--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hash, ok := refreshDigest(s)
		if !ok {
			if hash != "" {
				t.Fatalf("refreshDigest(%q) = %q, false; want no digest", s, hash)
			}
			return
		}
		if b, err := hex.DecodeString(hash); err != nil || len(b) != 32 {
			t.Fatalf("refreshDigest(%q) = %q: not a hex SHA-256", s, hash)
		}
		// One accepted spelling per token: re-encoding gives s back.
		raw, _ := refreshEncoding.DecodeString(s)
		if refreshEncoding.EncodeToString(raw) != s {
			t.Fatalf("refreshDigest accepted the non-canonical %q", s)
		}
	})
}
