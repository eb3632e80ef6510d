package accounts

import (
	"strings"
	"unicode/utf8"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
)

// normalizeUsername validates a username and returns its canonical,
// lower-case form, the form stored and looked up.
//
// Only ASCII letters, digits, '_', '.' and '-' are accepted, checked before
// lower-casing: strings.ToLower maps some non-ASCII runes to ASCII (the
// Kelvin sign U+212A becomes 'k'), which would let look-alike names reach
// someone else's account name.
func normalizeUsername(raw string) (string, error) {
	if raw == "" {
		return "", apierr.New(apierr.BadRequest, "username is required")
	}
	if len(raw) < accountsapi.MinUsernameLen || len(raw) > accountsapi.MaxUsernameLen {
		return "", apierr.New(apierr.BadRequest, "username must be %d to %d characters long",
			accountsapi.MinUsernameLen, accountsapi.MaxUsernameLen)
	}
	for i := 0; i < len(raw); i++ {
		if !usernameByte(raw[i]) {
			return "", apierr.New(apierr.BadRequest, "username may only contain letters a-z, digits 0-9, '_', '.' and '-'")
		}
	}
	return strings.ToLower(raw), nil
}

func usernameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// checkNewPassword applies the password policy to a new password. Any
// Unicode is allowed (passphrases), counted in UTF-8 bytes; NUL is not, as
// C and C++ clients (the Unreal plugin among them) end strings at NUL and
// their users could never type the password again.
func checkNewPassword(pw string) error {
	if pw == "" {
		return apierr.New(apierr.BadRequest, "password is required")
	}
	if len(pw) < accountsapi.MinPasswordLen || len(pw) > accountsapi.MaxPasswordLen {
		return apierr.New(apierr.BadRequest, "password must be %d to %d bytes long",
			accountsapi.MinPasswordLen, accountsapi.MaxPasswordLen)
	}
	return checkPasswordBytes(pw)
}

// checkLoginPassword is deliberately looser than checkNewPassword: it keeps
// the hard bounds (so argon2 never hashes megabytes) but not the minimum
// length, so raising the minimum later does not lock out existing accounts.
// Too-short passwords simply fail to match.
func checkLoginPassword(pw string) error {
	if pw == "" {
		return apierr.New(apierr.BadRequest, "password is required")
	}
	if len(pw) > accountsapi.MaxPasswordLen {
		return apierr.New(apierr.BadRequest, "password must be at most %d bytes long", accountsapi.MaxPasswordLen)
	}
	return checkPasswordBytes(pw)
}

func checkPasswordBytes(pw string) error {
	if strings.IndexByte(pw, 0) >= 0 {
		return apierr.New(apierr.BadRequest, "password must not contain NUL characters")
	}
	// encoding/json already replaces invalid UTF-8 with U+FFFD; this guards
	// callers that reach the service another way (gateway opcodes later).
	if !utf8.ValidString(pw) {
		return apierr.New(apierr.BadRequest, "password must be valid UTF-8")
	}
	return nil
}
