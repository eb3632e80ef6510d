package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// maxResponse bounds what the client reads: answers are a few hundred bytes
// per cell, and a misbehaving peer must not make a router buffer megabytes.
const maxResponse = 1 << 20

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
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return apierr.Wrap(op, apierr.Internal, "encode request", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return apierr.Wrap(op, apierr.Internal, "build request", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		if c.Token == nil {
			return apierr.New(apierr.Unauthenticated, "%s: no server credential configured", op)
		}
		tok, err := c.Token(ctx)
		if err != nil {
			return apierr.Wrap(op, apierr.Unauthenticated, "server credential", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return apierr.Wrap(op, apierr.Unavailable, "control plane unreachable", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return apierr.Wrap(op, apierr.Unavailable, "reading control plane response", err)
	}
	if len(data) > maxResponse {
		return apierr.Wrap(op, apierr.Internal, "control plane response too large", fmt.Errorf("more than %d bytes", maxResponse))
	}
	if resp.StatusCode != http.StatusOK {
		var eb httpapi.ErrorBody
		_ = json.Unmarshal(data, &eb) // a proxy's HTML page falls back below
		code := eb.Code
		if !code.Known() {
			// Whatever stands between us and the control plane failed:
			// callers treat it like the control plane being down.
			code, eb.Message = apierr.Unavailable, ""
			if resp.StatusCode < 500 {
				code = apierr.Internal
			}
		}
		return apierr.Wrap(op, code, eb.Message, fmt.Errorf("HTTP %d from %s", resp.StatusCode, path))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apierr.Wrap(op, apierr.Internal, "malformed control plane response", err)
	}
	return nil
}
