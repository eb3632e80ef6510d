// Package platform is the contract between the accounts service and the
// platform verifiers (Steam, Epic) that turn a ticket or token a game client
// obtained from its platform into a verified platform identity.
//
// The verifiers live in the steam and epic subpackages; each has a test
// server (steamtest, epictest) that speaks the platform's documented format
// with real signatures, for tests and benchmarks of everything above them.
//
// Errors a verifier returns always carry an apierr code a client may see:
//
//   - apierr.BadRequest: the ticket cannot be a platform ticket (empty,
//     too long, wrong alphabet); nothing was sent anywhere.
//   - apierr.InvalidCredentials: the platform (or, for Epic, its signature)
//     rejected the ticket. The public message is generic; the platform's
//     own reason is in the wrapped cause, for logs.
//   - apierr.PermissionDenied: the ticket is genuine but the platform says
//     the account is banned from this game.
//   - apierr.Unavailable: the platform could not be asked or answered
//     something we do not understand. Retryable. A malformed or unexpected
//     answer is never read as success.
package platform

import (
	"context"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// Providers, as stored next to a platform subject: the pair (Provider,
// Subject) names one platform account.
const (
	ProviderSteam = "steam"
	ProviderEpic  = "epic"
)

// Identity is a platform account whose ticket was verified.
type Identity struct {
	// Provider is ProviderSteam or ProviderEpic.
	Provider string
	// Subject is the platform's stable account id: the SteamID64 in
	// decimal for Steam, the Epic Account ID for Epic.
	Subject string
	// DisplayName is the platform display name when the verification
	// carries one (Epic ID tokens do, Steam tickets do not). It is a hint
	// for a new account's name, never an identifier.
	DisplayName string
	// Flags are facts the platform reported that do not stop the login but
	// that the game may act on. Flags is a bit set rather than a map so an
	// Identity stays comparable.
	Flags Flags
}

// Flags is a set of Flag values.
type Flags uint8

// Flag values.
const (
	// FlagVACBanned: Steam reports a VAC ban on the account. VAC bans are
	// per game family, so they are information, not a reason to refuse.
	FlagVACBanned Flags = 1 << iota
	// FlagFamilyShared: the Steam account plays a copy borrowed through
	// Family Sharing (the ticket's owner differs from the player).
	FlagFamilyShared
)

var flagNames = [...]string{"vac_banned", "family_shared"}

// Has reports whether every flag in x is set in f.
func (f Flags) Has(x Flags) bool { return f&x == x }

// String lists the set flags, for logs ("vac_banned|family_shared").
func (f Flags) String() string {
	var names []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := f &^ (1<<len(flagNames) - 1); rest != 0 {
		names = append(names, "unknown")
	}
	return strings.Join(names, "|")
}

// Verifier checks a platform ticket and returns whose it is. Implementations
// are safe for concurrent use. The accounts service declares its own
// consumer interface of the same shape; this one documents the contract
// (see the package doc for the error codes).
type Verifier interface {
	Verify(ctx context.Context, ticket string) (Identity, error)
}

// Public messages. They are deliberately generic: which check failed, and
// what the platform said, is for the logs, not for whoever holds the ticket.
const (
	msgRejected    = "platform ticket rejected"
	msgBanned      = "account is banned from this game"
	msgUnavailable = "platform login is unavailable, retry later"
)

// Rejected reports a ticket the platform (or its signature check) refused.
func Rejected(op string, cause error) *apierr.Error {
	return apierr.Wrap(op, apierr.InvalidCredentials, msgRejected, cause)
}

// Banned reports a genuine ticket of an account the platform bans from the
// game.
func Banned(op string, cause error) *apierr.Error {
	return apierr.Wrap(op, apierr.PermissionDenied, msgBanned, cause)
}

// Unavailable reports that the platform could not give a usable answer.
func Unavailable(op string, cause error) *apierr.Error {
	return apierr.Wrap(op, apierr.Unavailable, msgUnavailable, cause)
}

// BadTicket reports input that cannot be a ticket; msg says what is wrong
// with it and is shown to the client.
func BadTicket(op, msg string) *apierr.Error {
	return &apierr.Error{Op: op, Code: apierr.BadRequest, Msg: msg}
}
