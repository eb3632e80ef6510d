package epic

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// maxJWKSBody bounds a key set answer; Epic's is a few kilobytes.
	maxJWKSBody = 256 << 10
	// maxKeys bounds how many keys one set may hold.
	maxKeys = 64
	// maxKID bounds a kid, in a token or a key set.
	maxKID = 256
	// minRSABits refuses keys too weak to trust, whoever published them.
	minRSABits = 2048
	maxRSABits = 8192
)

// keySet is one fetched JWKS. It is never modified once published.
type keySet struct {
	keys      map[string]*rsa.PublicKey
	etag      string
	refreshAt time.Time // revalidate at or after this time
}

// jwk is the part of RFC 7517/7518 we read. Epic publishes RSA keys.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// fetchKeys fetches the key set and publishes it. old, when non-nil, is
// revalidated with its ETag and kept on 304 Not Modified. On any error the
// published set is left as it was.
func (v *Verifier) fetchKeys(ctx context.Context, old *keySet) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return fmt.Errorf("epic JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return fmt.Errorf("epic JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return fmt.Errorf("epic JWKS: GET %s: read: %w", v.cfg.JWKSURL, err)
	}
	refreshAt := v.now().Add(v.freshFor(resp.Header.Get("Cache-Control")))

	switch {
	case resp.StatusCode == http.StatusNotModified && old != nil:
		etag := old.etag
		if e := resp.Header.Get("ETag"); e != "" {
			etag = e
		}
		v.keys.Store(&keySet{keys: old.keys, etag: etag, refreshAt: refreshAt})
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("epic JWKS: GET %s: HTTP %d", v.cfg.JWKSURL, resp.StatusCode)
	case len(body) > maxJWKSBody:
		return fmt.Errorf("epic JWKS: GET %s: answer exceeds %d bytes", v.cfg.JWKSURL, maxJWKSBody)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("epic JWKS: GET %s: %w", v.cfg.JWKSURL, err)
	}
	v.keys.Store(&keySet{keys: keys, etag: resp.Header.Get("ETag"), refreshAt: refreshAt})
	return nil
}

// freshFor is how long a key set stays fresh: the endpoint's max-age when
// it gives one (no-cache and no-store count as 0), clamped to
// [MinRefreshInterval, RefreshInterval]. The upper bound keeps a removed
// (perhaps compromised) key from being trusted for long after Epic drops
// it; the lower one keeps "max-age=0" from turning every login into a
// fetch.
func (v *Verifier) freshFor(cacheControl string) time.Duration {
	d := v.cfg.RefreshInterval
	for _, dir := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			d = 0
		case "max-age":
			if s, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && s >= 0 && time.Duration(s) < d/time.Second {
				d = time.Duration(s) * time.Second
			}
		}
	}
	return min(max(d, v.cfg.MinRefreshInterval), v.cfg.RefreshInterval)
}

// parseJWKS reads a JWK Set and returns its RSA signing keys by kid. Keys
// we cannot use (other types, encryption keys, other algorithms, weak or
// malformed ones, no kid) are skipped, so one odd key does not lock out
// tokens signed by the others; a kid that appears twice is dropped, since
// we could not tell which key it means. A set with no usable key is an
// error, and the previous set stays in use.
func parseJWKS(body []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("malformed key set: %w", err)
	}
	if len(set.Keys) > maxKeys {
		return nil, fmt.Errorf("key set has %d keys, more than %d", len(set.Keys), maxKeys)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	dup := make(map[string]bool)
	for _, raw := range set.Keys {
		var k jwk
		if json.Unmarshal(raw, &k) != nil {
			continue
		}
		pub, err := k.rsaKey()
		if err != nil {
			continue
		}
		if _, seen := keys[k.Kid]; seen || dup[k.Kid] {
			delete(keys, k.Kid)
			dup[k.Kid] = true
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("key set has no usable RS256 signing key")
	}
	return keys, nil
}

// rsaKey returns k as an RS256 verification key, or why it is not one.
func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	switch {
	case k.Kty != "RSA":
		return nil, fmt.Errorf("kty %q", k.Kty)
	case k.Kid == "" || len(k.Kid) > maxKID:
		return nil, errors.New("no usable kid")
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("use %q", k.Use)
	case k.Alg != "" && k.Alg != "RS256":
		return nil, fmt.Errorf("alg %q", k.Alg)
	}
	n, err := b64uint(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}
	e, err := b64uint(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("%d-bit modulus", bits)
	}
	// Exponents are small odd numbers (65537 in practice); anything else
	// is a broken or hostile key.
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil, fmt.Errorf("exponent %v", e)
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// b64uint decodes a base64url big-endian unsigned integer (RFC 7518 6.3.1).
// Padding is tolerated; leading zero octets are not allowed by the RFC but
// harmless, so they are accepted.
func b64uint(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimLeft(b, "\x00")
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}
