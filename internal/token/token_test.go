package token_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
)

// RFC 8037 Appendix A.1/A.3: an Ed25519 key and its RFC 7638 thumbprint.
const (
	rfcSeed       = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

func rfcKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	seed, err := base64.RawURLEncoding.DecodeString(rfcSeed)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t testing.TB, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	var out []byte
	for _, k := range keys {
		b, err := token.EncodePrivateKeyPEM(k)
		if err != nil {
			t.Fatalf("EncodePrivateKeyPEM: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

func keySet(t testing.TB, keys ...ed25519.PrivateKey) *token.KeySet {
	t.Helper()
	ks, err := token.ParseKeySetPEM(pemOf(t, keys...))
	if err != nil {
		t.Fatalf("ParseKeySetPEM: %v", err)
	}
	return ks
}

func signer(t testing.TB, ks *token.KeySet, now time.Time) *token.Signer {
	t.Helper()
	s, err := token.NewSigner(ks, clock(now))
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func seg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// build hand-assembles a token, for the shapes a Signer never produces.
func build(t testing.TB, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	input := seg(t, header) + "." + seg(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func validClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": token.Issuer, "sub": "p1", "aud": token.AudiencePlayer, "cell": "eu-1", "jti": "j",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ks := keySet(t, newKey(t))
	s := signer(t, ks, epoch)
	v := token.NewVerifier(ks, clock(epoch.Add(time.Minute)))
	tests := []struct {
		name     string
		issue    func() (string, time.Time, error)
		audience string
		want     token.Claims
	}{
		{"player", func() (string, time.Time, error) { return s.IssuePlayer("player-1", "eu-1", 15*time.Minute) },
			token.AudiencePlayer, token.Claims{Subject: "player-1", Audience: token.AudiencePlayer, Cell: "eu-1"}},
		{"server", func() (string, time.Time, error) {
			return s.IssueServer("ds-7", []string{"progression:report", "inventory:grant"}, time.Hour)
		}, token.AudienceServer, token.Claims{Subject: "ds-7", Audience: token.AudienceServer, Scopes: []string{"progression:report", "inventory:grant"}}},
		{"resume", func() (string, time.Time, error) { return s.IssueResume("player-1", "sess-9", "us-1", 5*time.Minute) },
			token.AudienceResume, token.Claims{Subject: "player-1", Audience: token.AudienceResume, SessionID: "sess-9", Cell: "us-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, exp, err := tt.issue()
			if err != nil {
				t.Fatalf("issue: %v", err)
			}
			got, err := v.Verify(tok, tt.audience)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != tt.want.Subject || got.Audience != tt.want.Audience || got.Cell != tt.want.Cell ||
				got.SessionID != tt.want.SessionID || !slices.Equal(got.Scopes, tt.want.Scopes) {
				t.Errorf("got claims %+v, want %+v", got, tt.want)
			}
			if !got.ExpiresAt.Equal(exp) {
				t.Errorf("got ExpiresAt %v, want the returned exp %v", got.ExpiresAt, exp)
			}
			if !got.IssuedAt.Equal(epoch) {
				t.Errorf("got IssuedAt %v, want %v", got.IssuedAt, epoch)
			}
			if len(got.ID) != 22 { // 16 random bytes, base64url
				t.Errorf("got jti %q (%d chars), want 22 chars", got.ID, len(got.ID))
			}
		})
	}
}

func TestHeaderCarriesKidAndType(t *testing.T) {
	ks := keySet(t, rfcKey(t))
	tok, _, err := signer(t, ks, epoch).IssuePlayer("p", "c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alg": "EdDSA", "kid": rfcThumbprint, "typ": "JWT"}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
}

func TestJTIsAreUnique(t *testing.T) {
	ks := keySet(t, newKey(t))
	s, v := signer(t, ks, epoch), token.NewVerifier(ks, clock(epoch))
	seen := map[string]bool{}
	for range 100 {
		tok, _, err := s.IssuePlayer("p", "c", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(tok, token.AudiencePlayer)
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("jti %q issued twice, want unique", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestVerifyRejects(t *testing.T) {
	key := rfcKey(t)
	ks := keySet(t, key)
	kid := ks.SigningKeyID()
	s := signer(t, ks, epoch)
	v := token.NewVerifier(ks, clock(epoch))
	edSign := func(k ed25519.PrivateKey) func([]byte) []byte {
		return func(in []byte) []byte { return ed25519.Sign(k, in) }
	}
	header := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "JWT"}
	claims := validClaims(epoch)
	issue := func(tok string, _ time.Time, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	player := issue(s.IssuePlayer("p1", "eu-1", time.Hour))
	server := issue(s.IssueServer("svc", []string{"a"}, time.Hour))
	resume := issue(s.IssueResume("p1", "s1", "eu-1", time.Hour))
	parts := strings.Split(player, ".")

	// Sanity: the hand-built baseline passes, so each case below fails for
	// its own reason.
	if _, err := v.Verify(build(t, header, claims, edSign(key)), token.AudiencePlayer); err != nil {
		t.Fatalf("baseline hand-built token: %v", err)
	}

	nonCanonical := func(tok string) string {
		// A 64-byte signature leaves 4 unused bits in its last character;
		// setting them decodes to the same bytes under lenient decoding.
		last := tok[len(tok)-1]
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		return tok[:len(tok)-1] + string(alphabet[i|1])
	}
	otherKS := keySet(t, newKey(t))

	tests := []struct {
		name     string
		tok      string
		audience string
		wantCode apierr.Code
		wantMsg  string
	}{
		{"forged signature, same kid", build(t, header, claims, edSign(newKey(t))), token.AudiencePlayer, apierr.InvalidToken, "bad signature"},
		{"tampered payload", parts[0] + "." + seg(t, with(claims, "sub", "admin")) + "." + parts[2], token.AudiencePlayer, apierr.InvalidToken, "bad signature"},
		{"swapped signature", parts[0] + "." + parts[1] + "." + strings.Split(server, ".")[2], token.AudiencePlayer, apierr.InvalidToken, "bad signature"},
		{"alg none", seg(t, map[string]any{"alg": "none", "kid": kid}) + "." + seg(t, claims) + ".", token.AudiencePlayer, apierr.InvalidToken, "unsupported algorithm"},
		{"alg none with signature", build(t, map[string]any{"alg": "none", "kid": kid}, claims, edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "unsupported algorithm"},
		{"HS256 keyed with the public key", build(t, with(header, "alg", "HS256"), claims, func(in []byte) []byte {
			m := hmac.New(sha256.New, key.Public().(ed25519.PublicKey))
			m.Write(in)
			return m.Sum(nil)
		}), token.AudiencePlayer, apierr.InvalidToken, "unsupported algorithm"},
		{"RS256", build(t, with(header, "alg", "RS256"), claims, func([]byte) []byte { return make([]byte, 256) }), token.AudiencePlayer, apierr.InvalidToken, "unsupported algorithm"},
		{"unknown alg", build(t, with(header, "alg", "Ed448"), claims, edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "unsupported algorithm"},
		{"player token as server", player, token.AudienceServer, apierr.InvalidToken, "wrong audience"},
		{"server token as player", server, token.AudiencePlayer, apierr.InvalidToken, "wrong audience"},
		{"resume token as player", resume, token.AudiencePlayer, apierr.InvalidToken, "wrong audience"},
		{"player token as resume", player, token.AudienceResume, apierr.InvalidToken, "wrong audience"},
		{"two audiences", build(t, header, with(claims, "aud", []string{token.AudiencePlayer, token.AudienceServer}), edSign(key)), token.AudienceServer, apierr.InvalidToken, "wrong audience"},
		{"empty audience asked", player, "", apierr.InvalidToken, "wrong audience"},
		{"no audience", build(t, header, with(claims, "aud", nil), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "missing required claim"},
		{"wrong issuer", build(t, header, with(claims, "iss", "evil"), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "wrong issuer"},
		{"no expiry", build(t, header, with(claims, "exp", nil), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "missing required claim"},
		{"no subject", build(t, header, with(claims, "sub", nil), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "missing subject"},
		{"expired", issue(signer(t, ks, epoch.Add(-2*time.Hour)).IssuePlayer("p", "c", time.Hour)), token.AudiencePlayer, apierr.TokenExpired, "token expired"},
		{"expired and misdirected", issue(signer(t, ks, epoch.Add(-2*time.Hour)).IssuePlayer("p", "c", time.Hour)), token.AudienceServer, apierr.InvalidToken, "wrong audience"},
		{"expired and forged", build(t, header, with(claims, "exp", epoch.Add(-time.Hour).Unix()), edSign(newKey(t))), token.AudiencePlayer, apierr.InvalidToken, "bad signature"},
		{"not yet valid", issue(signer(t, ks, epoch.Add(time.Hour)).IssuePlayer("p", "c", 2*time.Hour)), token.AudiencePlayer, apierr.InvalidToken, "token not yet valid"},
		{"issued in the future", build(t, header, with(claims, "nbf", nil, "iat", epoch.Add(time.Minute).Unix()), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "token not yet valid"},
		{"unknown kid", issue(signer(t, otherKS, epoch).IssuePlayer("p", "c", time.Hour)), token.AudiencePlayer, apierr.InvalidToken, "unknown key id"},
		{"no kid", build(t, with(header, "kid", nil), claims, edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "missing key id"},
		{"numeric kid", build(t, with(header, "kid", 7), claims, edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "missing key id"},
		{"crit header", build(t, with(header, "crit", []string{"exp"}), claims, edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "unsupported critical header"},
		{"non-canonical base64", nonCanonical(player), token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"empty", "", token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"garbage", "not a token", token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"two segments", parts[0] + "." + parts[1], token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"four segments", player + ".x", token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"dots", "...", token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2], token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"claims wrong type", build(t, header, with(claims, "exp", "tomorrow"), edSign(key)), token.AudiencePlayer, apierr.InvalidToken, "malformed token"},
		{"oversized", player[:len(parts[0])+1] + strings.Repeat("A", token.MaxTokenSize) + "." + parts[2], token.AudiencePlayer, apierr.InvalidToken, "token too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(tt.tok, tt.audience)
			if err == nil {
				t.Fatalf("Verify accepted the token with claims %+v, want %s", got, tt.wantMsg)
			}
			if _, ok := apierr.From(err); !ok {
				t.Fatalf("got %T %v, want an *apierr.Error", err, err)
			}
			if code := apierr.CodeOf(err); code != tt.wantCode {
				t.Errorf("got code %q, want %q (err: %v)", code, tt.wantCode, err)
			}
			if msg := apierr.MessageOf(err); msg != tt.wantMsg {
				t.Errorf("got message %q, want %q (err: %v)", msg, tt.wantMsg, err)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	ks := keySet(t, newKey(t))
	v := token.NewVerifier(ks, clock(epoch))
	tests := []struct {
		name   string
		issued time.Time
		ttl    time.Duration
	}{
		{"expired within leeway", epoch.Add(-time.Hour - 10*time.Second), time.Hour},
		{"issued slightly in the future", epoch.Add(10 * time.Second), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := signer(t, ks, tt.issued).IssuePlayer("p", "c", tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(tok, token.AudiencePlayer); err != nil {
				t.Errorf("Verify: %v, want accepted within %v leeway", err, token.Leeway)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	before := keySet(t, oldKey)
	after := keySet(t, newK, oldKey) // rotation: prepend the new key

	oldTok, _, err := signer(t, before, epoch).IssuePlayer("p", "c", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, err := signer(t, after, epoch).IssuePlayer("p", "c", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.SigningKeyID(), token.Thumbprint(newK.Public().(ed25519.PublicKey)); got != want {
		t.Errorf("after rotation, signing kid = %s, want the new key's %s", got, want)
	}
	if got := after.KeyIDs(); len(got) != 2 {
		t.Errorf("got %d verification keys after rotation, want 2", len(got))
	}
	tests := []struct {
		name   string
		ks     *token.KeySet
		tok    string
		wantOK bool
	}{
		{"old token, rotated set", after, oldTok, true},
		{"new token, rotated set", after, newTok, true},
		{"new token, old set", before, newTok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := token.NewVerifier(tt.ks, clock(epoch)).Verify(tt.tok, token.AudiencePlayer)
			if (err == nil) != tt.wantOK {
				t.Errorf("Verify error = %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	ks := keySet(t, rfcKey(t), newKey(t))
	data, err := ks.JWKS()
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	if strings.Contains(string(data), `"d"`) {
		t.Fatalf("JWKS %s contains private key material", data)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": rfcThumbprint, "x": rfcX}
	for k, v := range want {
		if set.Keys[0][k] != v {
			t.Errorf("first JWK %s = %q, want %q", k, set.Keys[0][k], v)
		}
	}

	pub, err := token.ParseJWKS(data)
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	if pub.CanSign() {
		t.Error("CanSign() = true for a JWKS set, want false")
	}
	if _, err := token.NewSigner(pub, nil); err == nil {
		t.Error("NewSigner on a verify-only set: got nil error, want one")
	}
	if got, want := pub.KeyIDs(), ks.KeyIDs(); !slices.Equal(got, want) {
		t.Errorf("got kids %v, want %v", got, want)
	}
	tok, _, err := signer(t, ks, epoch).IssueServer("svc", []string{"x"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := token.NewVerifier(pub, clock(epoch)).Verify(tok, token.AudienceServer); err != nil {
		t.Errorf("verify with the JWKS set: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	x := rfcX
	tests := []struct {
		name     string
		data     string
		wantErr  string
		wantKids []string
	}{
		{"kid from thumbprint", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`, "", []string{rfcThumbprint}},
		{"explicit kid kept", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"k1"}]}`, "", []string{"k1"}},
		{"other keys skipped", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"},{"kty":"OKP","crv":"X25519","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","use":"enc","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"ok"}]}`, "", []string{"ok"}},
		{"no usable key", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, "no Ed25519 signing key", nil},
		{"empty", `{"keys":[]}`, "no Ed25519 signing key", nil},
		{"private key published", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"` + rfcSeed + `"}]}`, "private key", nil},
		{"short x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`, "not a base64url Ed25519 public key", nil},
		{"padded x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `="}]}`, "not a base64url Ed25519 public key", nil},
		{"not JSON", `keys`, "token.ParseJWKS", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := token.ParseJWKS([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJWKS: %v", err)
			}
			if got := ks.KeyIDs(); !slices.Equal(got, tt.wantKids) {
				t.Errorf("got kids %v, want %v", got, tt.wantKids)
			}
		})
	}
}

func TestThumbprintRFC8037(t *testing.T) {
	pub := rfcKey(t).Public().(ed25519.PublicKey)
	if got := base64.RawURLEncoding.EncodeToString(pub); got != rfcX {
		t.Fatalf("public key x = %s, want %s", got, rfcX)
	}
	if got := token.Thumbprint(pub); got != rfcThumbprint {
		t.Errorf("Thumbprint = %s, want %s", got, rfcThumbprint)
	}
}

func TestPEMRoundTripAndLoadKeySet(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, pemOf(t, k1, k2), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := token.LoadKeySet(path)
	if err != nil {
		t.Fatalf("LoadKeySet: %v", err)
	}
	if !ks.CanSign() {
		t.Fatal("CanSign() = false, want true")
	}
	want := []string{token.Thumbprint(k1.Public().(ed25519.PublicKey)), token.Thumbprint(k2.Public().(ed25519.PublicKey))}
	if got := ks.KeyIDs(); !slices.Equal(got, want) {
		t.Errorf("got kids %v, want %v (file order, first signs)", got, want)
	}
	if got := ks.SigningKeyID(); got != want[0] {
		t.Errorf("got signing kid %s, want the first key's %s", got, want[0])
	}
	if _, err := token.LoadKeySet(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("LoadKeySet of a missing file: got nil error, want one")
	}
}

func TestParseKeySetPEMRejects(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	good := pemOf(t, newKey(t))
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "no PRIVATE KEY block"},
		{"not PEM", []byte("hello"), "trailing data"},
		{"trailing garbage", append(append([]byte{}, good...), "junk"...), "trailing data"},
		{"public key block", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), `"PUBLIC KEY"`},
		{"ECDSA key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "want an Ed25519 key"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "block 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := token.ParseKeySetPEM(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := token.EncodePrivateKeyPEM(ed25519.PrivateKey{1, 2}); err == nil {
		t.Error("EncodePrivateKeyPEM of a short key: got nil error, want one")
	}
}

func TestIssueValidatesInput(t *testing.T) {
	s := signer(t, keySet(t, newKey(t)), epoch)
	tests := []struct {
		name  string
		issue func() (string, time.Time, error)
	}{
		{"player without id", func() (string, time.Time, error) { return s.IssuePlayer("", "c", time.Hour) }},
		{"server without subject", func() (string, time.Time, error) { return s.IssueServer("", nil, time.Hour) }},
		{"scope with space", func() (string, time.Time, error) { return s.IssueServer("s", []string{"a b"}, time.Hour) }},
		{"empty scope", func() (string, time.Time, error) { return s.IssueServer("s", []string{""}, time.Hour) }},
		{"resume without session", func() (string, time.Time, error) { return s.IssueResume("p", "", "c", time.Hour) }},
		{"sub-second ttl", func() (string, time.Time, error) { return s.IssuePlayer("p", "c", time.Millisecond) }},
		{"negative ttl", func() (string, time.Time, error) { return s.IssuePlayer("p", "c", -time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, _, err := tt.issue(); err == nil {
				t.Errorf("got token %q, want an error", tok)
			}
		})
	}
	if _, err := token.NewSigner(nil, nil); err == nil {
		t.Error("NewSigner(nil): got nil error, want one")
	}
}

func TestGenerateKeySetSignsAndVerifies(t *testing.T) {
	ks, err := token.GenerateKeySet()
	if err != nil {
		t.Fatalf("GenerateKeySet: %v", err)
	}
	tok, _, err := signer(t, ks, time.Now()).IssuePlayer("p", "c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := token.NewVerifier(ks, nil).Verify(tok, token.AudiencePlayer)
	if err != nil {
		t.Fatalf("Verify with the real clock: %v", err)
	}
	if c.Subject != "p" {
		t.Errorf("got subject %q, want p", c.Subject)
	}
}

func TestHasScope(t *testing.T) {
	c := token.Claims{Scopes: []string{"progression:report", "inventory:grant"}}
	tests := []struct {
		scope string
		want  bool
	}{
		{"progression:report", true},
		{"inventory:grant", true},
		{"inventory", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := c.HasScope(tt.scope); got != tt.want {
			t.Errorf("HasScope(%q) = %v, want %v", tt.scope, got, tt.want)
		}
	}
}

func BenchmarkIssuePlayer(b *testing.B) {
	s := signer(b, keySet(b, rfcKey(b)), epoch)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.IssuePlayer("01J9Z3K4W6X8Y0A2B4C6D8E0F2", "eu-west-1a", 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	ks := keySet(b, rfcKey(b))
	tok, _, err := signer(b, ks, epoch).IssuePlayer("01J9Z3K4W6X8Y0A2B4C6D8E0F2", "eu-west-1a", 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	v := token.NewVerifier(ks, clock(epoch))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, token.AudiencePlayer); err != nil {
			b.Fatal(err)
		}
	}
}

// The signer uses curve25519-voi for speed; Ed25519 is deterministic, so
// its signatures must be byte for byte those of crypto/ed25519, for every
// key (the RFC 8032 test key and random ones) and every token shape.
func TestSignerMatchesStdlib(t *testing.T) {
	keys := []ed25519.PrivateKey{rfcKey(t)}
	for range 64 {
		keys = append(keys, newKey(t))
	}
	for i, k := range keys {
		s := signer(t, keySet(t, k), epoch.Add(time.Duration(i)*time.Second))
		issue := []func() (string, time.Time, error){
			func() (string, time.Time, error) {
				return s.IssuePlayer(strings.Repeat("p", 1+i), "eu-west", 15*time.Minute)
			},
			func() (string, time.Time, error) {
				return s.IssueServer("ds-"+strconv.Itoa(i), []string{"match:report", "inventory:grant"}, time.Hour)
			},
			func() (string, time.Time, error) {
				return s.IssueResume("p", "sess-"+strconv.Itoa(i), "us-east", time.Minute)
			},
		}
		for _, f := range issue {
			tok, _, err := f()
			if err != nil {
				t.Fatal(err)
			}
			dot := strings.LastIndexByte(tok, '.')
			got, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if err != nil {
				t.Fatalf("signature of %q: %v", tok, err)
			}
			if want := ed25519.Sign(k, []byte(tok[:dot])); !bytes.Equal(got, want) {
				t.Fatalf("key %d: signature %x, crypto/ed25519 gives %x", i, got, want)
			}
		}
	}
}
