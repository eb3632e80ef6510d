package catalogapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// Client reads a cell's catalog API and caches the catalog: within MaxAge it
// answers from memory, after that it revalidates with If-None-Match, so an
// unchanged catalog costs a 304 and no body. It is safe for concurrent use.
//
// Every error is an *apierr.Error (Unavailable when the service cannot be
// reached). When revalidation fails and a cached catalog exists, Catalog
// returns the cached one: a catalog a few seconds old is better than a store
// that cannot sell.
type Client struct {
	BaseURL string // e.g. "http://127.0.0.1:4111"
	HTTP    *http.Client
	// MaxAge is how long a fetched catalog is used without asking again
	// (0: always revalidate).
	MaxAge time.Duration
	// Token is the server credential for the admin calls.
	Token string

	mu      sync.Mutex
	cached  *Catalog
	etag    string
	fetched time.Time
}

// Catalog returns the current catalog.
func (c *Client) Catalog(ctx context.Context) (Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && time.Since(c.fetched) < c.MaxAge {
		return *c.cached, nil
	}
	cat, notModified, err := c.fetch(ctx)
	switch {
	case err != nil && c.cached != nil:
		return *c.cached, nil
	case err != nil:
		return Catalog{}, err
	case notModified:
		c.fetched = time.Now()
		return *c.cached, nil
	}
	c.cached, c.etag, c.fetched = &cat, ETag(cat.Version), time.Now()
	return cat, nil
}

func (c *Client) fetch(ctx context.Context) (cat Catalog, notModified bool, err error) {
	const op = "catalogapi.Catalog"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+PathCatalog, nil)
	if err != nil {
		return Catalog{}, false, apierr.Wrap(op, apierr.Internal, "build request", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.cached != nil {
		req.Header.Set("If-None-Match", c.etag)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Catalog{}, false, apierr.Wrap(op, apierr.Unavailable, "catalog service unreachable", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && c.cached != nil {
		return Catalog{}, true, nil
	}
	// A catalog of MaxItems items is larger than httpapi.MaxResponse.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Catalog{}, false, apierr.Wrap(op, apierr.Unavailable, "reading catalog", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Catalog{}, false, httpapi.ResponseError(op, resp, data)
	}
	if err := json.Unmarshal(data, &cat); err != nil {
		return Catalog{}, false, apierr.Wrap(op, apierr.Internal, "malformed catalog", err)
	}
	return cat, false, nil
}

// PutItem creates or replaces an item (server credential with ScopeAdmin).
func (c *Client) PutItem(ctx context.Context, it Item) (Item, error) {
	var out Item
	err := c.put(ctx, "catalogapi.PutItem", PathAdminItems+"/"+url.PathEscape(it.ID), it, &out)
	return out, err
}

// PutOffer creates or replaces an offer (server credential with ScopeAdmin).
func (c *Client) PutOffer(ctx context.Context, o Offer) (Offer, error) {
	var out Offer
	err := c.put(ctx, "catalogapi.PutOffer", PathAdminOffers+"/"+url.PathEscape(o.ID), o, &out)
	return out, err
}

func (c *Client) put(ctx context.Context, op, path string, in, out any) error {
	if c.Token == "" {
		return apierr.Wrap(op, apierr.Unauthenticated, "a server token is required", fmt.Errorf("Client.Token is empty"))
	}
	return httpapi.Do(ctx, c.HTTP, httpapi.Call{
		Op: op, Peer: "catalog service", Method: http.MethodPut,
		URL: strings.TrimRight(c.BaseURL, "/") + path, Token: c.Token, In: in, Out: out,
	})
}
