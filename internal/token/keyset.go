package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

const pemPrivateKey = "PRIVATE KEY"

// KeySet holds one signing key, when it can sign, and the public keys that
// verify, by key id. A KeySet never changes after construction, so Signers
// and Verifiers share it without locks; rotate by loading a new one.
type KeySet struct {
	signer  ed25519.PrivateKey // nil for a verify-only set
	signKid string
	public  map[string]ed25519.PublicKey
	order   []string // kids in file order, for a stable JWKS
}

// GenerateKeySet returns a set with one fresh key, for development and tests:
// its tokens stop verifying when the process exits.
func GenerateKeySet() (*KeySet, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token.GenerateKeySet: %w", err)
	}
	ks := newKeySet()
	ks.addPrivate(priv)
	return ks, nil
}

// LoadKeySet reads a PEM file of PKCS#8 Ed25519 private keys; see
// ParseKeySetPEM.
func LoadKeySet(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token.LoadKeySet: %w", err)
	}
	ks, err := ParseKeySetPEM(data)
	if err != nil {
		return nil, fmt.Errorf("token.LoadKeySet %s: %w", path, err)
	}
	return ks, nil
}

// ParseKeySetPEM parses one or more "PRIVATE KEY" blocks (PKCS#8, Ed25519).
// The first key signs; all of them verify. To rotate, prepend a new key.
func ParseKeySetPEM(data []byte) (*KeySet, error) {
	ks := newKeySet()
	rest := data
	for i := 1; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemPrivateKey {
			return nil, fmt.Errorf("token.ParseKeySetPEM: block %d is %q, want %q", i, block.Type, pemPrivateKey)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token.ParseKeySetPEM: block %d: %w", i, err)
		}
		priv, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("token.ParseKeySetPEM: block %d is a %T, want an Ed25519 key", i, key)
		}
		ks.addPrivate(priv)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("token.ParseKeySetPEM: trailing data that is not a PEM block")
	}
	if ks.signer == nil {
		return nil, errors.New("token.ParseKeySetPEM: no PRIVATE KEY block")
	}
	return ks, nil
}

// EncodePrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block, the
// format LoadKeySet reads.
func EncodePrivateKeyPEM(k ed25519.PrivateKey) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("token.EncodePrivateKeyPEM: key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("token.EncodePrivateKeyPEM: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// jwk is an RFC 8037 OKP public key as published in a JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"` // only to refuse private keys
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid,omitempty"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

// ParseJWKS returns a verify-only set from a JWK Set. Keys that are not
// Ed25519 signing keys (other key types, use "enc", another alg) are skipped,
// so a shared JWKS may carry them; a set with no usable key is an error, as is
// one that publishes private key material.
func ParseJWKS(data []byte) (*KeySet, error) {
	var set jwks
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("token.ParseJWKS: %w", err)
	}
	ks := newKeySet()
	for i, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		if k.D != "" {
			return nil, fmt.Errorf("token.ParseJWKS: key %d contains a private key (\"d\"); publish public keys only", i)
		}
		x, err := base64.RawURLEncoding.Strict().DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("token.ParseJWKS: key %d: \"x\" is not a base64url Ed25519 public key", i)
		}
		pub := ed25519.PublicKey(x)
		kid := k.Kid
		if kid == "" {
			kid = Thumbprint(pub)
		}
		ks.addPublic(kid, pub)
	}
	if len(ks.public) == 0 {
		return nil, errors.New("token.ParseJWKS: no Ed25519 signing key")
	}
	return ks, nil
}

// JWKS returns the public keys as a JWK Set, for publishing to components
// that only verify.
func (ks *KeySet) JWKS() ([]byte, error) {
	set := jwks{Keys: make([]jwk, 0, len(ks.order))}
	for _, kid := range ks.order {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519", Use: "sig", Alg: "EdDSA", Kid: kid,
			X: base64.RawURLEncoding.EncodeToString(ks.public[kid]),
		})
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token.KeySet.JWKS: %w", err)
	}
	return out, nil
}

// CanSign reports whether the set holds a private key.
func (ks *KeySet) CanSign() bool { return ks.signer != nil }

// SigningKeyID is the kid new tokens carry ("" for a verify-only set).
func (ks *KeySet) SigningKeyID() string { return ks.signKid }

// KeyIDs lists the kids that verify, signing key first.
func (ks *KeySet) KeyIDs() []string { return append([]string(nil), ks.order...) }

func (ks *KeySet) publicKey(kid string) (ed25519.PublicKey, bool) {
	k, ok := ks.public[kid]
	return k, ok
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key
// (SHA-256, base64url without padding), livecell's key id.
func Thumbprint(pub ed25519.PublicKey) string {
	// RFC 7638 §3.2: the required members only, in lexicographic order, no
	// whitespace. Written by hand because the order is the whole point.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func newKeySet() *KeySet { return &KeySet{public: map[string]ed25519.PublicKey{}} }

func (ks *KeySet) addPrivate(priv ed25519.PrivateKey) {
	pub := priv.Public().(ed25519.PublicKey)
	kid := Thumbprint(pub)
	if ks.signer == nil {
		ks.signer, ks.signKid = priv, kid
	}
	ks.addPublic(kid, pub)
}

// addPublic ignores a kid it already has: the first occurrence wins, so a
// key listed twice during a rotation is harmless.
func (ks *KeySet) addPublic(kid string, pub ed25519.PublicKey) {
	if _, dup := ks.public[kid]; dup {
		return
	}
	ks.public[kid] = pub
	ks.order = append(ks.order, kid)
}
