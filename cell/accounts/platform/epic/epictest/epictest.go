// Package epictest is a local stand-in for Epic Online Services' ID token
// signing: it serves a JSON Web Key Set of freshly generated RSA keys, the
// way https://api.epicgames.dev/epic/oauth/v2/.well-known/jwks.json does,
// and signs ID tokens (RS256, with kid) with them. Tests and benchmarks of
// the epic verifier and of the accounts service use it, because Epic cannot
// be reached from CI and its real tokens cannot be minted.
//
// The key set is served with an ETag and answers a matching If-None-Match
// with 304, and with "Cache-Control: max-age=…" when MaxAge is set.
package epictest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Path is where the key set is served, as on api.epicgames.dev.
const Path = "/epic/oauth/v2/.well-known/jwks.json"

// Issuer is the iss Claims puts in tokens. Epic documents only that iss
// starts with https://api.epicgames.dev; this is the value seen in Epic
// Account Services tokens.
const Issuer = "https://api.epicgames.dev/epic/oauth/v1"

// Key is one signing key.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// Server serves a key set and signs tokens. It is safe for concurrent use.
type Server struct {
	srv      *httptest.Server
	requests atomic.Int64
	seq      atomic.Int64

	mu      sync.Mutex
	keys    []Key // keys[0] signs
	status  int   // non-zero: answer every request with this status
	maxAge  time.Duration
	notMods int
}

// NewServer starts a server with one signing key. Close it when done.
func NewServer() *Server {
	s := &Server{}
	s.keys = []Key{s.NewKey()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the key set's URL, for epic.Config.JWKSURL.
func (s *Server) URL() string { return s.srv.URL + Path }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Requests is how many requests for the key set the server has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// NotModified is how many of them were answered 304 Not Modified.
func (s *Server) NotModified() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notMods
}

// NewKey generates a 2048-bit RSA key with a fresh kid, without
// publishing it: sign with it to make a token from a key Epic does not
// have, or pass it to SetKeys.
func (s *Server) NewKey() Key {
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("epictest: generate RSA key: %v", err))
	}
	return Key{ID: fmt.Sprintf("epictest-%d", s.seq.Add(1)), Private: pk}
}

// SigningKey is the key Sign uses.
func (s *Server) SigningKey() Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

// Rotate replaces the key set with one new key, as a rotation that drops
// the old key does: tokens signed before no longer verify once a verifier
// has refetched.
func (s *Server) Rotate() Key {
	k := s.NewKey()
	s.SetKeys(k)
	return k
}

// SetKeys publishes exactly keys; the first one signs.
func (s *Server) SetKeys(keys ...Key) {
	if len(keys) == 0 {
		panic("epictest: SetKeys needs at least one key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]Key(nil), keys...)
}

// FailWith makes the key set endpoint answer HTTP status (for example
// 503); 0 restores normal answers.
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// SetMaxAge makes answers carry Cache-Control: max-age; 0 sends none.
func (s *Server) SetMaxAge(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxAge = d
}

// Claims returns the documented claims of a valid ID token for an Epic
// account, issued at now and valid for an hour, for the game's client and
// deployment ids. Tests change or delete claims to make invalid tokens.
func Claims(clientID, deploymentID, accountID, displayName string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   Issuer,
		"sub":   accountID,
		"aud":   clientID,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"dn":    displayName,
		"appid": "fghi4567epictestapp",
		"pfpid": "epictest-product",
		"pfsid": "epictest-sandbox",
		"pfdid": deploymentID,
	}
}

// AccountID returns a well-formed Epic Account ID (32 hex digits) derived
// from n, for making test players.
func AccountID(n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("epictest account ", n)))
	return hex.EncodeToString(sum[:16])
}

// Sign signs claims with the current signing key, RS256 with its kid.
func (s *Server) Sign(claims jwt.MapClaims) string {
	return SignWith(s.SigningKey(), claims)
}

// SignWith signs claims with k, RS256 with k's kid.
func SignWith(k Key, claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.ID
	out, err := t.SignedString(k.Private)
	if err != nil {
		panic(fmt.Sprintf("epictest: sign: %v", err))
	}
	return out
}

// JWKS returns the key set document for keys, as the server serves it.
func JWKS(keys ...Key) []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, k := range keys {
		pub := k.Private.PublicKey
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA",
			Use: "sig",
			Alg: "RS256",
			Kid: k.ID,
			N:   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("epictest: marshal key set: %v", err))
	}
	return b
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	s.requests.Add(1)
	s.mu.Lock()
	status, maxAge, keys := s.status, s.maxAge, s.keys
	s.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	body := JWKS(keys...)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if maxAge > 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(maxAge.Seconds())))
	}
	if r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.notMods++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
