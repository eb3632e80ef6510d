package epic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/livecell/livecell/cell/accounts/platform/epic/epictest"
)

func TestParseJWKS(t *testing.T) {
	srv := epictest.NewServer()
	defer srv.Close()
	a, b := srv.NewKey(), srv.NewKey()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(x *big.Int) string { return base64.RawURLEncoding.EncodeToString(x.Bytes()) }
	rsaJWK := func(kid string, k *rsa.PublicKey, extra map[string]any) map[string]any {
		m := map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N), "e": b64(big.NewInt(int64(k.E)))}
		for key, v := range extra {
			if v == nil {
				delete(m, key)
			} else {
				m[key] = v
			}
		}
		return m
	}
	pa, pb := &a.Private.PublicKey, &b.Private.PublicKey

	tests := []struct {
		name     string
		keys     []map[string]any
		wantKids []string // nil: an error is wanted
	}{
		{"one key", []map[string]any{rsaJWK("a", pa, nil)}, []string{"a"}},
		{"two keys", []map[string]any{rsaJWK("a", pa, nil), rsaJWK("b", pb, nil)}, []string{"a", "b"}},
		{"use and alg absent", []map[string]any{rsaJWK("a", pa, map[string]any{"use": nil, "alg": nil})}, []string{"a"}},
		{"padded base64", []map[string]any{rsaJWK("a", pa, map[string]any{"e": "AQAB=="})}, []string{"a"}},
		{"encryption key skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"use": "enc"}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"RS512 key skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"alg": "RS512"}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"no kid skipped", []map[string]any{rsaJWK("", pa, nil), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"1024-bit key skipped", []map[string]any{rsaJWK("weak", &weak.PublicKey, nil), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"even exponent skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"e": "AQAA"}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"exponent 1 skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"e": "AQ"}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"bad base64 skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"n": "!!"}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"n as number skipped", []map[string]any{rsaJWK("a", pa, map[string]any{"n": 5}), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"EC key skipped", []map[string]any{{"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(ec.X), "y": b64(ec.Y)}, rsaJWK("b", pb, nil)}, []string{"b"}},
		{"duplicate kid dropped", []map[string]any{rsaJWK("a", pa, nil), rsaJWK("a", pb, nil), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"kid thrice dropped", []map[string]any{rsaJWK("a", pa, nil), rsaJWK("a", pb, nil), rsaJWK("a", pa, nil), rsaJWK("b", pb, nil)}, []string{"b"}},
		{"only unusable keys", []map[string]any{rsaJWK("a", pa, map[string]any{"use": "enc"})}, nil},
		{"empty", []map[string]any{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"keys": tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := parseJWKS(body)
			if tt.wantKids == nil {
				if err == nil {
					t.Fatalf("parseJWKS = %d keys, want an error", len(keys))
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			var kids []string
			for kid := range keys {
				kids = append(kids, kid)
			}
			slices.Sort(kids)
			if !slices.Equal(kids, tt.wantKids) {
				t.Fatalf("kids = %v, want %v", kids, tt.wantKids)
			}
		})
	}
}

func TestParseJWKSKeyMatchesPublished(t *testing.T) {
	srv := epictest.NewServer()
	defer srv.Close()
	k := srv.SigningKey()
	keys, err := parseJWKS(epictest.JWKS(k))
	if err != nil {
		t.Fatal(err)
	}
	if got := keys[k.ID]; got == nil || !got.Equal(&k.Private.PublicKey) {
		t.Fatalf("key %q = %v, want the published public key", k.ID, got)
	}
}

func TestParseJWKSRejectsMalformedSets(t *testing.T) {
	for _, body := range []string{"", "null", "[]", `{"keys":{}}`, `{"keys":"x"}`, "<html>", `{"keys":[` + strings.Repeat(`{},`, maxKeys) + `{}]}`} {
		if keys, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("parseJWKS(%.40q) = %d keys, want an error", body, len(keys))
		}
	}
}

// FuzzParseJWKS checks that whatever a key set holds, parsing never panics
// and every key it yields is a usable RSA key.
func FuzzParseJWKS(f *testing.F) {
	srv := epictest.NewServer()
	defer srv.Close()
	f.Add(epictest.JWKS(srv.SigningKey()))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			return
		}
		for kid, k := range keys {
			if kid == "" || k.N.BitLen() < minRSABits || k.E < 3 || k.E%2 == 0 {
				t.Fatalf("accepted unusable key %q: %d bits, e=%d", kid, k.N.BitLen(), k.E)
			}
		}
	})
}
