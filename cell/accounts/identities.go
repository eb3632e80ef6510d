package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
)

// Bounds on what a platform verifier hands back. Real values are far
// smaller (a SteamID64 is 17 digits, an Epic account id 32 hex digits); the
// bounds keep a misbehaving verifier from writing junk rows.
const (
	maxSubjectLen     = 128
	maxDisplayNameLen = 64 // bytes of UTF-8, cut at a rune boundary
	// maxTicketLen bounds a ticket or ID token before it reaches a
	// verifier: Steam Web API tickets are a few hundred bytes of hex, EOS
	// ID tokens one or two KB.
	maxTicketLen = 8 << 10
	// handleAttempts bounds retries when a generated handle is taken
	// (50 random bits: in practice never).
	handleAttempts = 3
)

// knownProvider reports whether provider is one the API names.
func knownProvider(provider string) bool {
	return provider == accountsapi.ProviderSteam || provider == accountsapi.ProviderEpic
}

// credentialField is the JSON field that carries a provider's credential.
func credentialField(provider string) string {
	if provider == accountsapi.ProviderEpic {
		return "id_token"
	}
	return "ticket"
}

// platformEnabled refuses, before anything is parsed, requests for a
// platform this cell has no verifier for.
func (s *Service) platformEnabled(provider string) error {
	if s.platforms[provider] == nil {
		return apierr.New(apierr.PermissionDenied, "%s sign-in is not enabled on this cell", provider)
	}
	return nil
}

// verifyPlatform checks a platform credential and returns the verified
// identity, its display name cleaned for storage.
func (s *Service) verifyPlatform(ctx context.Context, op, provider, ticket string) (platform.Identity, error) {
	if err := s.platformEnabled(provider); err != nil {
		return platform.Identity{}, err
	}
	field := credentialField(provider)
	switch {
	case ticket == "":
		return platform.Identity{}, apierr.New(apierr.BadRequest, "%s is required", field)
	case len(ticket) > maxTicketLen:
		return platform.Identity{}, apierr.New(apierr.BadRequest, "%s must be at most %d bytes", field, maxTicketLen)
	}
	id, err := s.platforms[provider].Verify(ctx, ticket)
	if err != nil {
		return platform.Identity{}, platformError(op, provider, err)
	}
	if id.Provider != provider || id.Subject == "" || len(id.Subject) > maxSubjectLen || !StorableText(id.Subject) {
		// The verifier's bug, not the client's: never store such a row.
		return platform.Identity{}, apierr.Wrap(op, apierr.Internal, "",
			fmt.Errorf("%s verifier returned a malformed identity (provider %q, subject of %d bytes)", provider, id.Provider, len(id.Subject)))
	}
	id.DisplayName = cleanDisplayName(id.DisplayName)
	return id, nil
}

// platformError maps a verifier's error to the client's answer. A ticket
// that cannot be one and a banned account keep the verifier's code and
// message; a rejected ticket is invalid_credentials; anything else,
// including an error without a code (a verifier bug or a transport error it
// did not classify), is the platform being unavailable: retryable, and
// never read as a success.
func platformError(op, provider string, err error) error {
	e, coded := apierr.From(err)
	if coded {
		switch e.Code {
		case apierr.BadRequest, apierr.PermissionDenied:
			return fmt.Errorf("%s: %w", op, err)
		case apierr.InvalidCredentials, apierr.InvalidToken, apierr.TokenExpired, apierr.Unauthenticated:
			return apierr.Wrap(op, apierr.InvalidCredentials, provider+" sign-in was rejected", err)
		}
	}
	out := apierr.Wrap(op, apierr.Unavailable, provider+" sign-in is unavailable, retry later", err)
	if coded {
		out.RetryAfter = e.RetryAfter
	}
	return out
}

// cleanDisplayName makes a platform display name safe to store and show:
// valid UTF-8, no control characters, at most maxDisplayNameLen bytes.
func cleanDisplayName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > maxDisplayNameLen {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// accountKey is the rate-limit key of a platform account.
func accountKey(id platform.Identity) string { return id.Provider + ":" + id.Subject }

// platformLogin signs a player in with a platform credential, creating the
// account on the first login.
//
// The database work is one SessionStore step for a returning player (read
// the player, store the new refresh token) and, for a first login, one more
// to create player, identity and token together, after the directory entry.
func (s *Service) platformLogin(ctx context.Context, a *attempt, provider, ticket string) (accountsapi.AuthResponse, error) {
	op := "accounts.Login." + provider
	id, err := s.verifyPlatform(ctx, op, provider, ticket)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	if err := a.forAccount(accountKey(id)); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	raw, rt, err := s.newSession(op)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	p, err := s.sessions.SignInByIdentity(ctx, id.Provider, id.Subject, rt)
	created := false
	switch {
	case err == nil:
	case apierr.CodeOf(err) == apierr.NotFound:
		if p, created, err = s.createPlatformPlayer(ctx, op, id, rt); err != nil {
			return accountsapi.AuthResponse{}, err
		}
	default:
		return accountsapi.AuthResponse{}, storeError(op, err)
	}
	if created {
		s.log.LogAttrs(ctx, slog.LevelInfo, "player registered", platformAttrs(p, provider, id)...)
	} else if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "player logged in", platformAttrs(p, provider, id)...)
	}
	return s.sessionResponse(op, p, raw, created)
}

func platformAttrs(p Player, provider string, id platform.Identity) []slog.Attr {
	attrs := []slog.Attr{slog.String("player_id", p.ID), slog.String("provider", provider)}
	if id.Flags != 0 {
		attrs = append(attrs, slog.String("platform_flags", id.Flags.String()))
	}
	return attrs
}

// createPlatformPlayer creates the player of a first platform login, homed
// in this cell, with rt as its first refresh token. It returns the player
// and whether this call created it: a concurrent first login with the same
// account may win the race, and then this call signs in to the winner's
// player (storing rt for it).
//
// The player gets a generated handle "<provider>#<random>" as its username.
// Registration never accepts '#', so handles cannot collide with chosen
// usernames, and password login (which normalises usernames the same way)
// can never reach a platform account. Keeping players.username NOT NULL
// UNIQUE this way leaves every existing reader of it correct.
func (s *Service) createPlatformPlayer(ctx context.Context, op string, id platform.Identity, rt RefreshToken) (Player, bool, error) {
	for range handleAttempts {
		pid, err := uuid.NewV7()
		if err != nil {
			return Player{}, false, apierr.Wrap(op, apierr.Internal, "", fmt.Errorf("new player id: %w", err))
		}
		p := Player{
			ID:        pid.String(),
			Username:  platformHandle(id.Provider),
			HomeCell:  s.cfg.CellID,
			CreatedAt: s.now().UTC().Truncate(time.Microsecond),
		}
		// Directory first, as in register: an entry for a player that was
		// never stored is harmless, a stored player the router cannot
		// find is not.
		if err := s.homes.SetHome(ctx, p.ID, p.HomeCell); err != nil {
			return Player{}, false, homeError(op, p, err)
		}
		err = s.sessions.CreatePlayerWithIdentityAndToken(ctx, p, Identity{
			Provider: id.Provider, Subject: id.Subject, DisplayName: id.DisplayName, CreatedAt: p.CreatedAt,
		}, rt)
		if err == nil {
			return p, true, nil
		}
		if apierr.CodeOf(err) != apierr.Conflict {
			return Player{}, false, storeError(op, err)
		}
		// Either a concurrent first login stored this identity, or the
		// handle was taken; the identity tells which.
		winner, lerr := s.sessions.SignInByIdentity(ctx, id.Provider, id.Subject, rt)
		if lerr == nil {
			return winner, false, nil
		}
		if apierr.CodeOf(lerr) != apierr.NotFound {
			return Player{}, false, storeError(op, lerr)
		}
	}
	return Player{}, false, apierr.Wrap(op, apierr.Internal, "", fmt.Errorf("no free handle after %d attempts", handleAttempts))
}

// handleEncoding is lower-case base32 without padding: handles are
// lower-case like every stored username.
var handleEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// platformHandle returns a new random handle, e.g. "steam#k3j9x2qa7m".
func platformHandle(provider string) string {
	var b [7]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return provider + "#" + handleEncoding.EncodeToString(b[:])[:10]
}

// linkCredential checks a LinkRequest's shape: a known provider and its
// credential in the field that provider uses, the other one empty.
func linkCredential(req accountsapi.LinkRequest) (string, error) {
	switch req.Provider {
	case accountsapi.ProviderSteam:
		if req.IDToken != "" {
			return "", apierr.New(apierr.BadRequest, "a steam link takes ticket, not id_token")
		}
		return req.Ticket, nil
	case accountsapi.ProviderEpic:
		if req.Ticket != "" {
			return "", apierr.New(apierr.BadRequest, "an epic link takes id_token, not ticket")
		}
		return req.IDToken, nil
	case "":
		return "", apierr.New(apierr.BadRequest, "provider is required")
	default:
		return "", apierr.New(apierr.BadRequest, "provider must be %q or %q", accountsapi.ProviderSteam, accountsapi.ProviderEpic)
	}
}

// link links the platform account of req to playerID. Linking an account
// that belongs to another player is refused (conflict), never merged.
func (s *Service) link(ctx context.Context, a *attempt, playerID string, req accountsapi.LinkRequest) (accountsapi.Identity, bool, error) {
	const op = "accounts.Link"
	ticket, err := linkCredential(req)
	if err != nil {
		return accountsapi.Identity{}, false, err
	}
	id, err := s.verifyPlatform(ctx, op, req.Provider, ticket)
	if err != nil {
		return accountsapi.Identity{}, false, err
	}
	if err := a.forAccount(accountKey(id)); err != nil {
		return accountsapi.Identity{}, false, err
	}
	stored, created, err := s.store.LinkIdentity(ctx, Identity{
		Provider: id.Provider, Subject: id.Subject, PlayerID: playerID, DisplayName: id.DisplayName,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	})
	if err != nil {
		if apierr.CodeOf(err) == apierr.NotFound {
			return accountsapi.Identity{}, false, apierr.Wrap(op, apierr.UnknownPlayer, "no account for this player in this cell", err)
		}
		return accountsapi.Identity{}, false, storeError(op, err)
	}
	if created {
		s.log.LogAttrs(ctx, slog.LevelInfo, "identity linked", slog.String("player_id", playerID), slog.String("provider", id.Provider))
	}
	return wireIdentity(stored), created, nil
}

// unlink removes the caller's identity of provider, unless it is their last
// way to sign in.
func (s *Service) unlink(ctx context.Context, playerID, provider string) error {
	const op = "accounts.Unlink"
	if !knownProvider(provider) {
		// The path segment is not echoed: it is whatever the client sent.
		return apierr.New(apierr.NotFound, "unknown identity provider: want %q or %q", accountsapi.ProviderSteam, accountsapi.ProviderEpic)
	}
	// A password is a way to sign in only where password auth is on.
	if err := s.store.UnlinkIdentity(ctx, playerID, provider, s.cfg.PasswordAuth); err != nil {
		return storeError(op, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "identity unlinked", slog.String("player_id", playerID), slog.String("provider", provider))
	return nil
}

func wireIdentity(id Identity) accountsapi.Identity {
	return accountsapi.Identity{Provider: id.Provider, Subject: id.Subject, DisplayName: id.DisplayName, LinkedAt: id.CreatedAt.UTC()}
}
