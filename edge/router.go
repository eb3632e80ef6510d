package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Router resolves players' cells through the global router's
// GET /v1/resolve (docs/openapi/router.yaml), trying each URL in turn.
type Router struct {
	URLs []string     // base URLs of routers side by side
	HTTP *http.Client // nil: http.DefaultClient
}

var _ HomeResolver = (*Router)(nil)

// Home returns the cell the router sends the player to now: its home, or
// the home's failover cell while the home is down.
func (r *Router) Home(ctx context.Context, playerID string) (string, error) {
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	var errs []error
	for _, base := range r.URLs {
		cell, err := r.ask(ctx, hc, base, playerID)
		if err == nil {
			return cell, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return "", errors.New("edge: no router configured")
	}
	return "", errors.Join(errs...)
}

func (r *Router) ask(ctx context.Context, hc *http.Client, base, playerID string) (string, error) {
	u := strings.TrimRight(base, "/") + "/v1/resolve?" + url.Values{"player": {playerID}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("edge: resolve at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 64<<10)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, body)
		return "", fmt.Errorf("edge: resolve at %s: HTTP %d", base, resp.StatusCode)
	}
	var res struct {
		HomeCell string `json:"home_cell"`
	}
	if err := json.NewDecoder(body).Decode(&res); err != nil {
		return "", fmt.Errorf("edge: resolve at %s: %w", base, err)
	}
	if res.HomeCell == "" {
		return "", fmt.Errorf("edge: resolve at %s: no home_cell in the answer", base)
	}
	return res.HomeCell, nil
}
