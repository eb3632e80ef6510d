package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
)

// refreshTokenBytes is the entropy of a refresh token: 256 bits, so
// guessing one is hopeless and its SHA-256 digest is as good as a salted
// hash (no dictionary can hold it).
const refreshTokenBytes = 32

// refreshEncoding is how clients see tokens: 43 URL-safe characters. Strict
// decoding refuses the non-canonical spellings of the last character, so a
// token has exactly one accepted form.
var refreshEncoding = base64.RawURLEncoding.Strict()

// errBadRefresh answers every refresh token that does not rotate: unknown,
// expired, revoked, reused or malformed alike, so the answer tells an
// attacker nothing about which tokens exist.
func errBadRefresh() error {
	return apierr.New(apierr.InvalidToken, "invalid refresh token")
}

// newRefreshSecret returns a fresh token for the client and the digest the
// store keeps.
func newRefreshSecret() (token, hash string) {
	var b [refreshTokenBytes]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return refreshEncoding.EncodeToString(b[:]), digest(b[:])
}

// refreshDigest returns the stored digest of a token a client presented,
// or false when it cannot be one of ours.
//
// The store looks the digest up by equality (an index or a map); nothing
// compares a secret byte by byte. Lookup timing can at most reveal
// something about digests, and finding a token with a chosen digest prefix
// is a preimage search on SHA-256, so there is no timing oracle to close.
func refreshDigest(token string) (string, bool) {
	if len(token) != refreshEncoding.EncodedLen(refreshTokenBytes) {
		return "", false
	}
	b, err := refreshEncoding.DecodeString(token)
	if err != nil || len(b) != refreshTokenBytes {
		return "", false
	}
	return digest(b), true
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// issueSession starts a new refresh token family for p and returns it with
// a new access token: the answer to every successful sign-in.
func (s *Service) issueSession(ctx context.Context, op string, p Player, newAccount bool) (accountsapi.AuthResponse, error) {
	raw, rt, err := s.newSession(op)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	rt.PlayerID, rt.HomeCell = p.ID, p.HomeCell
	if err := s.store.CreateRefreshToken(ctx, rt); err != nil {
		return accountsapi.AuthResponse{}, storeError(op, err)
	}
	return s.sessionResponse(op, p, raw, newAccount)
}

// newSession returns the first token of a new refresh family, not yet
// stored and not yet bound to a player: the client's secret and the row
// that keeps its digest.
func (s *Service) newSession(op string) (string, RefreshToken, error) {
	family, err := uuid.NewV7()
	if err != nil {
		return "", RefreshToken{}, apierr.Wrap(op, apierr.Internal, "", fmt.Errorf("new refresh family id: %w", err))
	}
	raw, hash := newRefreshSecret()
	now := s.now().UTC().Truncate(time.Microsecond)
	return raw, RefreshToken{Hash: hash, FamilyID: family.String(), IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}, nil
}

// sessionResponse answers a sign-in whose refresh token raw is stored: it
// signs p's access token.
func (s *Service) sessionResponse(op string, p Player, raw string, newAccount bool) (accountsapi.AuthResponse, error) {
	resp, err := s.issue(op, p)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	resp.RefreshToken, resp.RefreshExpiresIn, resp.NewAccount = raw, s.refreshExpiresIn(), newAccount
	return resp, nil
}

func (s *Service) refreshExpiresIn() int { return int(s.cfg.RefreshTokenTTL / time.Second) }

// refresh exchanges a refresh token for a new access token and the token's
// successor. A token presented a second time revokes its whole family: the
// legitimate client and whoever copied the token both lose it, and the
// player signs in again. That is the point: a stolen token stops working
// as soon as either party uses it after the other.
func (s *Service) refresh(ctx context.Context, a *attempt, req accountsapi.RefreshRequest) (accountsapi.AuthResponse, error) {
	const op = "accounts.Refresh"
	if req.RefreshToken == "" {
		return accountsapi.AuthResponse{}, apierr.New(apierr.BadRequest, "refresh_token is required")
	}
	hash, ok := refreshDigest(req.RefreshToken)
	if !ok {
		s.metrics.refreshed("malformed")
		return accountsapi.AuthResponse{}, errBadRefresh()
	}
	raw, nextHash := newRefreshSecret()
	now := s.now().UTC().Truncate(time.Microsecond)
	res, err := s.store.RotateRefreshToken(ctx, hash,
		RefreshToken{Hash: nextHash, IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}, now)
	if err != nil {
		return accountsapi.AuthResponse{}, storeError(op, err)
	}
	s.metrics.refreshed(outcomeLabel(res.Outcome))
	switch res.Outcome {
	case RefreshRotated:
	case RefreshReused:
		s.metrics.reused()
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresh token reused: family revoked",
			slog.String("player_id", res.PlayerID), slog.String("family_id", res.FamilyID), slog.String("source", a.source))
		return accountsapi.AuthResponse{}, errBadRefresh()
	default:
		return accountsapi.AuthResponse{}, errBadRefresh()
	}
	resp, err := s.issue(op, res.Player)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	resp.RefreshToken, resp.RefreshExpiresIn = raw, s.refreshExpiresIn()
	return resp, nil
}

// logout revokes the family of a refresh token. Unknown, malformed and
// already revoked tokens succeed alike: logging out twice is not an error,
// and the answer must not tell which tokens exist.
func (s *Service) logout(ctx context.Context, req accountsapi.LogoutRequest) error {
	const op = "accounts.Logout"
	if req.RefreshToken == "" {
		return apierr.New(apierr.BadRequest, "refresh_token is required")
	}
	hash, ok := refreshDigest(req.RefreshToken)
	if !ok {
		return nil
	}
	if _, err := s.store.RevokeRefreshFamily(ctx, hash, s.now().UTC().Truncate(time.Microsecond)); err != nil {
		return storeError(op, err)
	}
	return nil
}

func outcomeLabel(o RefreshOutcome) string {
	switch o {
	case RefreshRotated:
		return "rotated"
	case RefreshReused:
		return "reused"
	case RefreshUnknown:
		return "unknown"
	case RefreshExpired:
		return "expired"
	case RefreshRevoked:
		return "revoked"
	}
	return "other"
}
