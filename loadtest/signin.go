package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/loadtest/scenario"
)

// mintedTTL is the lifetime of tokens the load tester mints: longer than
// any benchmark, and renewed like any other token when it runs out.
const mintedTTL = time.Hour

// signIn makes sure the player holds a usable access token and knows
// where to connect.
func (p *player) signIn(ctx context.Context) error {
	if p.e.sc.Login == scenario.LoginToken {
		return p.mint()
	}
	if p.gateway == "" || p.api == "" {
		if err := p.resolve(ctx); err != nil {
			return err
		}
	}
	if p.access != "" && time.Now().Before(p.accessExp) {
		return nil
	}
	var (
		auth accountsapi.AuthResponse
		err  error
	)
	acc := accountsapi.Client{BaseURL: "http://" + p.api, HTTP: p.e.http}
	cctx, cancel := context.WithTimeout(ctx, p.e.sc.Connect.Timeout)
	defer cancel()
	start := time.Now()
	switch {
	case p.refresh != "":
		auth, err = acc.Refresh(cctx, p.refresh)
		p.e.result(ctx, p.e.ops.refresh, start, start, err)
		if err != nil {
			// A refresh token that no longer works (expired, or its
			// family revoked) is dropped: the next attempt logs in.
			p.refresh = ""
			return err
		}
	case p.registered:
		auth, err = acc.Login(cctx, accountsapi.LoginRequest{Username: p.username, Password: p.password})
		p.e.result(ctx, p.e.ops.login, start, start, err)
	default:
		auth, err = acc.Register(cctx, accountsapi.RegisterRequest{Username: p.username, Password: p.password})
		p.e.result(ctx, p.e.ops.register, start, start, err)
		if apierr.CodeOf(err) == apierr.Conflict {
			// Registered by an attempt whose answer was lost.
			p.registered = true
		}
	}
	if err != nil {
		if apierr.CodeOf(err) == apierr.Unavailable {
			p.gateway, p.api = "", "" // the cell may be down: ask the router again
		}
		return err
	}
	p.registered = true
	p.id, p.access, p.refresh = auth.PlayerID, auth.AccessToken, auth.RefreshToken
	p.accessExp = expires(start, auth.ExpiresIn)
	if auth.HomeCell != "" && auth.HomeCell != p.home {
		// The home is the accounts service's word: when the router named
		// another cell, ask it again for the player, now known by id.
		p.home, p.gateway = auth.HomeCell, ""
		return p.resolve(ctx)
	}
	return nil
}

// resolution is what the load tester reads of the router's /v1/resolve.
type resolution struct {
	PlayerID string `json:"player_id"`
	HomeCell string `json:"home_cell"`
	Gateway  string `json:"gateway"`
	API      string `json:"api"`
}

// resolve asks a router for the player's home cell: by player id once the
// player has one, else as a new player hinted at the scenario's cell.
func (p *player) resolve(ctx context.Context) error {
	routers := p.e.target.Routers
	if len(routers) == 0 {
		return errors.New("loadtest: password login needs a router (Target.Routers)")
	}
	q := url.Values{}
	switch {
	case p.id != "":
		q.Set("player", p.id)
	case p.cell != "":
		q.Set("region_hint", p.cell)
	}
	base := routers[(p.n+p.failures)%len(routers)]
	u := strings.TrimRight(base, "/") + "/v1/resolve"
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	var res resolution
	cctx, cancel := context.WithTimeout(ctx, p.e.sc.Connect.Timeout)
	defer cancel()
	start := time.Now()
	err := httpapi.Do(cctx, p.e.http, httpapi.Call{Op: "loadtest.resolve", Peer: "router", Method: http.MethodGet, URL: u, Out: &res})
	if err == nil && (res.HomeCell == "" || res.Gateway == "" || res.API == "") {
		err = apierr.Wrap("loadtest.resolve", apierr.BadRequest, "router answer lacks home_cell, gateway or api", fmt.Errorf("got %+v", res))
	}
	p.e.result(ctx, p.e.ops.resolve, start, start, err)
	if err != nil {
		return err
	}
	p.home, p.gateway, p.api = res.HomeCell, res.Gateway, res.API
	return nil
}

// mint issues the player an access token with the cells' signing key and
// picks its home cell's gateway: no router, no accounts service.
func (p *player) mint() error {
	if p.cell == "" {
		return errors.New("loadtest: token login needs cells to home players to")
	}
	if p.gateway == "" {
		gws := p.e.target.Gateways[p.cell]
		if len(gws) == 0 && p.e.sc.Connect.Via != scenario.ViaEdge {
			return fmt.Errorf("loadtest: no gateway address for cell %s", p.cell)
		}
		if len(gws) > 0 {
			p.gateway = gws[p.n%len(gws)]
		}
	}
	if p.access != "" && time.Now().Before(p.accessExp) {
		return nil
	}
	if p.id == "" {
		p.id = p.username
	}
	tok, exp, err := p.e.signer.IssuePlayer(p.id, p.cell, mintedTTL)
	if err != nil {
		return fmt.Errorf("loadtest: mint a token: %w", err)
	}
	p.access, p.accessExp = tok, exp.Add(-mintedTTL/5)
	p.home = p.cell
	return nil
}
