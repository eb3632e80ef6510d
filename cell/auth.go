package cell

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/livecell/livecell/gateway"
	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// resumeTTL bounds how long a dropped player may resume without logging in
// again; long enough to ride out a cell failover or a gateway drain.
const resumeTTL = 10 * time.Minute

// authenticator admits a Hello carrying a player access token or a resume
// token, verified offline against the cell's public keys. A player may
// connect to their home cell or to a cell their home fails over to.
type authenticator struct {
	cell        string
	failoverFor []string // cells whose players this cell takes on failover
	verify      *token.Verifier
	policy      sessionPolicy // the control plane's orders (orders.go); nil without one
}

var _ gateway.Authenticator = (*authenticator)(nil)

func (a *authenticator) Authenticate(ctx context.Context, h protocol.Hello) (gateway.Identity, error) {
	var (
		claims token.Claims
		err    error
	)
	switch {
	case h.Token != "":
		claims, err = a.verify.Verify(h.Token, token.AudiencePlayer)
	case h.ResumeToken != "":
		claims, err = a.verify.Verify(h.ResumeToken, token.AudienceResume)
	default:
		return gateway.Identity{}, apierr.New(apierr.Unauthenticated, "hello carries neither token nor resume_token")
	}
	if err != nil {
		return gateway.Identity{}, err
	}
	admitted := false
	if a.policy != nil {
		if err := a.policy.Refuse(claims.Subject); err != nil {
			return gateway.Identity{}, err
		}
		admitted = a.policy.Admits(claims.Subject)
	}
	if claims.Cell != "" && claims.Cell != a.cell && !slices.Contains(a.failoverFor, claims.Cell) && !admitted {
		return gateway.Identity{}, apierr.New(apierr.PermissionDenied, "player is homed to cell %s", claims.Cell)
	}
	return gateway.Identity{PlayerID: claims.Subject, HomeCell: claims.Cell, ExpiresAt: claims.ExpiresAt}, nil
}

// failoverSources lists the cells that name cellID in their failover list.
func failoverSources(cells *config.Cells, cellID string) []string {
	if cells == nil {
		return nil
	}
	var out []string
	for _, c := range cells.Cells {
		if slices.Contains(c.Failover, cellID) {
			out = append(out, c.ID)
		}
	}
	return out
}

// edgeAuthenticator admits an edge relay's backbone link: a server
// credential granting backbone.Scope, verified offline like every token.
type edgeAuthenticator struct{ verify *token.Verifier }

var _ backbone.Authenticator = edgeAuthenticator{}

func (a edgeAuthenticator) AuthenticateEdge(_ context.Context, tok string) (string, error) {
	claims, err := a.verify.Verify(tok, token.AudienceServer)
	if err != nil {
		return "", err
	}
	if !claims.HasScope(backbone.Scope) {
		return "", apierr.New(apierr.PermissionDenied, "the credential of %s does not grant scope %q", claims.Subject, backbone.Scope)
	}
	return claims.Subject, nil
}

type resumeIssuer struct{ s *token.Signer }

func (r resumeIssuer) IssueResume(playerID, sessionID, cell string) (string, error) {
	tok, _, err := r.s.IssueResume(playerID, sessionID, cell, resumeTTL)
	return tok, err
}

// serverTokens mints and caches this process's server credential, renewing
// it well before it expires.
type serverTokens struct {
	signer  *token.Signer
	subject string
	ttl     time.Duration

	mu  sync.Mutex
	tok string
	exp time.Time
}

func (s *serverTokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != "" && time.Until(s.exp) > s.ttl/4 {
		return s.tok, nil
	}
	tok, exp, err := s.signer.IssueServer(s.subject, []string{"ops"}, s.ttl)
	if err != nil {
		return "", err
	}
	s.tok, s.exp = tok, exp
	return tok, nil
}

// playerVerifier adapts the token verifier to what accounts asks of it.
type playerVerifier struct{ v *token.Verifier }

func (p playerVerifier) VerifyPlayer(tok string) (string, string, error) {
	c, err := p.v.Verify(tok, token.AudiencePlayer)
	if err != nil {
		return "", "", err
	}
	return c.Subject, c.Cell, nil
}
