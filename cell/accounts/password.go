package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters for new password hashes.
// Every hash records its own parameters (PHC string format), so raising them
// later affects new hashes only and old ones still verify.
type Argon2Params struct {
	Time      uint32 // passes over memory (t)
	MemoryKiB uint32 // memory in KiB (m)
	Threads   uint8  // lanes (p)
	KeyLen    uint32 // hash length in bytes
	SaltLen   uint32 // random salt length in bytes
}

// DefaultArgon2 returns OWASP's recommended argon2id configuration
// (m=19456 KiB, t=2, p=1) with a 32-byte hash and a 16-byte salt.
func DefaultArgon2() Argon2Params {
	return Argon2Params{Time: 2, MemoryKiB: 19456, Threads: 1, KeyLen: 32, SaltLen: 16}
}

// Bounds on parameters, for configuration and for hashes read back from the
// store: a corrupt row must not make one login allocate gigabytes.
const (
	maxArgonTime    = 64
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	minArgonKeyLen  = 16
	maxArgonKeyLen  = 128
	minArgonSaltLen = 8
	maxArgonSaltLen = 64
)

func (p Argon2Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2 time %d out of range 1..%d", p.Time, maxArgonTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2 threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemory:
		// argon2 needs 8 KiB per lane.
		return fmt.Errorf("argon2 memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxArgonMemory)
	case p.KeyLen < minArgonKeyLen || p.KeyLen > maxArgonKeyLen:
		return fmt.Errorf("argon2 key length %d out of range %d..%d", p.KeyLen, minArgonKeyLen, maxArgonKeyLen)
	case p.SaltLen < minArgonSaltLen || p.SaltLen > maxArgonSaltLen:
		return fmt.Errorf("argon2 salt length %d out of range %d..%d", p.SaltLen, minArgonSaltLen, maxArgonSaltLen)
	}
	return nil
}

// phcPrefix starts every hash this package writes; argon2.Version is 0x13.
const phcPrefix = "$argon2id$v=19$"

// hashPassword returns the argon2id hash of password in PHC string format:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash> (unpadded
// standard base64), the format of the reference implementation and of most
// other libraries, so hashes can move to other tooling.
func hashPassword(p Argon2Params, password string) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hashPassword: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// errBadHash reports a stored hash this package cannot read: a bug or a
// corrupt row, never the caller's fault.
var errBadHash = errors.New("malformed password hash")

// verifyPassword reports whether password matches encoded, a hash written by
// hashPassword with any parameters. The comparison is constant-time.
func verifyPassword(encoded, password string) (bool, error) {
	p, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parseHash decodes a PHC argon2id string, rejecting anything outside the
// bounds validate enforces on configuration.
func parseHash(encoded string) (Argon2Params, []byte, []byte, error) {
	rest, ok := strings.CutPrefix(encoded, phcPrefix)
	if !ok {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: not argon2id v=19", errBadHash)
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: want params$salt$hash", errBadHash)
	}
	var p Argon2Params
	var threads uint32
	// Sscanf would accept trailing garbage and signs; re-printing and
	// comparing keeps the accepted form canonical.
	if _, err := fmt.Sscanf(parts[0], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, threads) != parts[0] || threads > 255 {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: bad parameters %q", errBadHash, parts[0])
	}
	p.Threads = uint8(threads)
	salt, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: salt: %v", errBadHash, err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: hash: %v", errBadHash, err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: %v", errBadHash, err)
	}
	return p, salt, key, nil
}
