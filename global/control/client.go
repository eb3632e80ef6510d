package control

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// Client calls the control plane's HTTP API. It is the directory of
// processes that do not own it: cells' accounts write homes with SetHome,
// routers read them with Home (behind a HomeCache).
//
// Every error is an *apierr.Error: a non-2xx answer carries the server's
// code (unknown_player for a player without a home), a transport failure
// apierr.Unavailable with the cause wrapped.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:4101"
	HTTP    *http.Client // nil uses http.DefaultClient; deadlines come from ctx
	// Token returns the server credential (audience livecell:server, scope
	// ScopeDirectoryWrite) SetHome presents. Reads need none.
	Token func(ctx context.Context) (string, error)
}

// Home returns playerID's home cell, or an apierr.UnknownPlayer error.
func (c *Client) Home(ctx context.Context, playerID string) (string, error) {
	var e Entry
	if err := c.do(ctx, "control.Home", http.MethodGet, PathDirectory+url.PathEscape(playerID), false, nil, &e); err != nil {
		return "", err
	}
	return e.Cell, nil
}

// SetHome places or rehomes playerID in cellID.
func (c *Client) SetHome(ctx context.Context, playerID, cellID string) error {
	return c.do(ctx, "control.SetHome", http.MethodPut, PathDirectory+url.PathEscape(playerID), true, SetHomeRequest{Cell: cellID}, nil)
}

// Cells returns every cell with its health and load as the control plane
// sees it.
func (c *Client) Cells(ctx context.Context) (CellsResponse, error) {
	var out CellsResponse
	err := c.do(ctx, "control.Cells", http.MethodGet, PathCells, false, nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, op, method, path string, auth bool, in, out any) error {
	call := httpapi.Call{
		Op: op, Peer: "control plane", Method: method,
		URL: strings.TrimRight(c.BaseURL, "/") + path, In: in, Out: out,
	}
	if auth {
		if c.Token == nil {
			return apierr.New(apierr.Unauthenticated, "%s: no server credential configured", op)
		}
		tok, err := c.Token(ctx)
		if err != nil {
			return apierr.Wrap(op, apierr.Unauthenticated, "server credential", err)
		}
		call.Token = tok
	}
	return httpapi.Do(ctx, c.HTTP, call)
}
