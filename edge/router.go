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
	"sync/atomic"
	"time"
)

// Router resolves players' cells through the global router's
// GET /v1/resolve (docs/openapi/router.yaml), trying each URL in turn.
// When every router fails it stops asking for a while: players then attach
// by their token's cell at once instead of each waiting for a router that
// is down.
type Router struct {
	URLs    []string      // base URLs of routers side by side
	HTTP    *http.Client  // nil: http.DefaultClient
	Backoff time.Duration // how long to stop asking after every router failed; default 5s

	downUntil atomic.Int64 // UnixNano
}

// errRoutersDown answers while the routers are considered down.
var errRoutersDown = errors.New("edge: the routers failed recently; not asking until they may be back")

var _ HomeResolver = (*Router)(nil)

// Home returns the cell the router sends the player to now: its home, or
// the home's failover cell while the home is down.
func (r *Router) Home(ctx context.Context, playerID string) (string, error) {
	if time.Now().UnixNano() < r.downUntil.Load() {
		return "", errRoutersDown
	}
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	var errs []error
	down := true // every router unreachable or failing (5xx), not merely refusing this player
	for _, base := range r.URLs {
		cell, err := r.ask(ctx, hc, base, playerID)
		if err == nil {
			return cell, nil
		}
		errs = append(errs, err)
		var se statusError
		if errors.As(err, &se) && se.code < 500 {
			down = false
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return "", errors.New("edge: no router configured")
	}
	if down && ctx.Err() == nil {
		backoff := r.Backoff
		if backoff <= 0 {
			backoff = 5 * time.Second
		}
		r.downUntil.Store(time.Now().Add(backoff).UnixNano())
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
		return "", statusError{base: base, code: resp.StatusCode}
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

// statusError is a router's answer other than 200.
type statusError struct {
	base string
	code int
}

func (e statusError) Error() string {
	return fmt.Sprintf("edge: resolve at %s: HTTP %d", e.base, e.code)
}
