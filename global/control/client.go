package control

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/router"
)

// Client calls the control plane's HTTP API. It is the directory of
// processes that do not own it: cells' accounts write homes with SetHome,
// routers read them with Home (behind a HomeCache) and poll Routing, cells'
// agents poll Orders, and `livecell control` operator commands call the
// rest.
//
// Every error is an *apierr.Error: a non-2xx answer carries the server's
// code (unknown_player for a player without a home), a transport failure
// apierr.Unavailable with the cause wrapped. A Client is safe for
// concurrent use; do not copy one after first use.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:4101"
	HTTP    *http.Client // nil uses http.DefaultClient; deadlines come from ctx
	// Token returns the server credential writes present: scope
	// ScopeDirectoryWrite for SetHome, ScopeAdmin for operator calls.
	// Reads need none.
	Token func(ctx context.Context) (string, error)

	// The last routing table and its ETag: unchanged tables cost a 304.
	routingMu   sync.Mutex
	routingETag string
	routing     RoutingResponse
}

var _ router.RoutingSource = (*Client)(nil)

// Home returns playerID's home cell, or an apierr.UnknownPlayer error.
func (c *Client) Home(ctx context.Context, playerID string) (string, error) {
	var e Entry
	if err := c.do(ctx, "control.Home", http.MethodGet, PathDirectory+url.PathEscape(playerID), false, nil, &e); err != nil {
		return "", err
	}
	return e.Cell, nil
}

// SetHome records the home cell of a player the caller just created. The
// control plane refuses (apierr.Draining) a cell that no longer takes new
// players, and a player who already has another home (apierr.Conflict).
func (c *Client) SetHome(ctx context.Context, playerID, cellID string) error {
	return c.do(ctx, "control.SetHome", http.MethodPut, PathDirectory+url.PathEscape(playerID), true, SetHomeRequest{Cell: cellID}, nil)
}

// Cells returns every cell with its health, load and state as the control
// plane sees it.
func (c *Client) Cells(ctx context.Context) (CellsResponse, error) {
	var out CellsResponse
	err := c.do(ctx, "control.Cells", http.MethodGet, PathCells, false, nil, &out)
	return out, err
}

// Routing implements router.RoutingSource: the cell states and override
// table, revalidated with the last answer's ETag.
func (c *Client) Routing(ctx context.Context) (router.Routing, error) {
	resp, err := c.RoutingTable(ctx)
	if err != nil {
		return router.Routing{}, err
	}
	return resp.Routing(), nil
}

// RoutingTable returns the routing table in its wire form.
func (c *Client) RoutingTable(ctx context.Context) (RoutingResponse, error) {
	const op = "control.Routing"
	c.routingMu.Lock()
	etag, last := c.routingETag, c.routing
	c.routingMu.Unlock()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(PathRouting), nil)
	if err != nil {
		return RoutingResponse{}, apierr.Wrap(op, apierr.Internal, "build request", err)
	}
	req.Header.Set("Accept", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return RoutingResponse{}, apierr.Wrap(op, apierr.Unavailable, "control plane unreachable", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, httpapi.MaxResponse+1))
	if err != nil {
		return RoutingResponse{}, apierr.Wrap(op, apierr.Unavailable, "reading the control plane's response", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return last, nil
	case resp.StatusCode != http.StatusOK:
		return RoutingResponse{}, httpapi.ResponseError(op, resp, data)
	case len(data) > httpapi.MaxResponse:
		return RoutingResponse{}, apierr.New(apierr.Internal, "%s: routing table larger than %d bytes", op, httpapi.MaxResponse)
	}
	var out RoutingResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return RoutingResponse{}, apierr.Wrap(op, apierr.Internal, "malformed control plane response", err)
	}
	c.routingMu.Lock()
	c.routingETag, c.routing = resp.Header.Get("ETag"), out
	c.routingMu.Unlock()
	return out, nil
}

// Orders returns cell's orders with the redirect markers after the cursor.
func (c *Client) Orders(ctx context.Context, cell string, after int64) (Orders, error) {
	var out Orders
	path := PathCells + "/" + url.PathEscape(cell) + "/orders?after=" + strconv.FormatInt(after, 10)
	err := c.do(ctx, "control.Orders", http.MethodGet, path, false, nil, &out)
	return out, err
}

// Moves returns every cell's redirect markers after the cursor; with
// after < 0, none and the cursor to follow from now on.
func (c *Client) Moves(ctx context.Context, after int64) (MovesResponse, error) {
	path := PathMoves
	if after >= 0 {
		path += "?after=" + strconv.FormatInt(after, 10)
	}
	var out MovesResponse
	err := c.do(ctx, "control.Moves", http.MethodGet, path, false, nil, &out)
	return out, err
}

// Drain sets cell draining (or changes the rate of its drain).
func (c *Client) Drain(ctx context.Context, cell string, req DrainRequest) (DrainState, error) {
	var out DrainState
	err := c.do(ctx, "control.Drain", http.MethodPut, PathCells+"/"+url.PathEscape(cell)+"/drain", true, req, &out)
	return out, err
}

// Undrain ends an operator's drain of cell.
func (c *Client) Undrain(ctx context.Context, cell string) error {
	return c.do(ctx, "control.Undrain", http.MethodDelete, PathCells+"/"+url.PathEscape(cell)+"/drain", true, nil, nil)
}

// Overrides returns the whole override table with its notes.
func (c *Client) Overrides(ctx context.Context) ([]OverrideEntry, error) {
	var out OverridesResponse
	err := c.do(ctx, "control.Overrides", http.MethodGet, PathOverrides, true, nil, &out)
	return out.Overrides, err
}

// SetOverride pins or quarantines playerID.
func (c *Client) SetOverride(ctx context.Context, playerID string, req OverrideRequest) (OverrideEntry, error) {
	var out OverrideEntry
	err := c.do(ctx, "control.SetOverride", http.MethodPut, PathOverrides+"/"+url.PathEscape(playerID), true, req, &out)
	return out, err
}

// ClearOverride removes playerID's override (apierr.NotFound if none).
func (c *Client) ClearOverride(ctx context.Context, playerID string) error {
	return c.do(ctx, "control.ClearOverride", http.MethodDelete, PathOverrides+"/"+url.PathEscape(playerID), true, nil, nil)
}

// Rehome moves playerID, data and all, to another home cell.
func (c *Client) Rehome(ctx context.Context, playerID string, req RehomeRequest) (RehomeResult, error) {
	var out RehomeResult
	err := c.do(ctx, "control.Rehome", http.MethodPost, PathPlayers+url.PathEscape(playerID)+"/rehome", true, req, &out)
	return out, err
}

func (c *Client) url(path string) string { return strings.TrimRight(c.BaseURL, "/") + path }

func (c *Client) do(ctx context.Context, op, method, path string, auth bool, in, out any) error {
	call := httpapi.Call{Op: op, Peer: "control plane", Method: method, URL: c.url(path), In: in, Out: out}
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
