package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/config"
)

// HTTPStatus reads a cell's status from its HTTP API:
// GET http://<cell.api>/v1/status.
type HTTPStatus struct {
	Client *http.Client // nil means http.DefaultClient
}

var _ StatusSource = HTTPStatus{}

// maxStatusBody bounds what a probe reads: a status is a few hundred bytes,
// and a misbehaving endpoint must not make the router buffer megabytes.
const maxStatusBody = 64 << 10

// Status implements StatusSource. Any answer but 200 with a JSON Status is
// an error.
func (h HTTPStatus) Status(ctx context.Context, c config.Cell) (cellapi.Status, error) {
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	var st cellapi.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.API+cellapi.StatusPath, nil)
	if err != nil {
		return st, fmt.Errorf("router: status of %s: %w", c.ID, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("router: status of %s: %w", c.ID, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxStatusBody)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, body) // lets the connection be reused
		return st, fmt.Errorf("router: status of %s: HTTP %d", c.ID, resp.StatusCode)
	}
	if err := json.NewDecoder(body).Decode(&st); err != nil {
		return st, fmt.Errorf("router: status of %s: decode: %w", c.ID, err)
	}
	_, _ = io.Copy(io.Discard, body)
	return st, nil
}

// health is the router's mutable view of one cell, guarded by Router.mu.
type health struct {
	up       bool
	everUp   bool   // before the first success, one good probe is enough
	fails    int    // consecutive failed probes
	oks      int    // consecutive good probes
	sessions int    // from the last good status
	reported string // the state the cell reported in its last good status
	version  string
	lastErr  string
	lastAt   time.Time
}

// record applies one probe outcome with hysteresis and reports whether the
// cell changed between up and down.
func (h *health) record(ok bool, failThreshold, riseThreshold int) bool {
	if ok {
		h.fails = 0
		h.oks++
		if !h.up && (!h.everUp || h.oks >= riseThreshold) {
			h.up, h.everUp = true, true
			return true
		}
		return false
	}
	h.oks = 0
	h.fails++
	if h.up && h.fails >= failThreshold {
		h.up = false
		return true
	}
	return false
}

type probeResult struct {
	st  cellapi.Status
	err error
	at  time.Time
}

// probeRound probes every cell concurrently, each bounded by ProbeTimeout,
// then applies all outcomes at once and publishes a new view.
func (r *Router) probeRound(ctx context.Context) {
	r.mu.Lock()
	cells := r.cells
	r.mu.Unlock()

	results := make([]probeResult, len(cells.Cells))
	var wg sync.WaitGroup
	for i, c := range cells.Cells {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
			defer cancel()
			st, err := r.status.Status(pctx, c)
			if err == nil {
				err = checkStatus(c, st)
			}
			results[i] = probeResult{st: st, err: err, at: time.Now()}
		})
	}
	wg.Wait()
	// A round cut short by Stop would count as failures of every cell and
	// could mark a healthy world down; drop it.
	if ctx.Err() != nil {
		return
	}
	r.apply(cells, results)
}

// checkStatus turns a status that answered but is unusable into an error.
func checkStatus(c config.Cell, st cellapi.Status) error {
	if st.Cell != "" && st.Cell != c.ID {
		// A wrong address in cells.yaml would otherwise let one cell's
		// health stand in for another's.
		return fmt.Errorf("answered as cell %q", st.Cell)
	}
	if !st.Healthy {
		return fmt.Errorf("reports unhealthy")
	}
	return nil
}

func (r *Router) apply(probed *config.Cells, results []probeResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	current := r.cells
	for i, c := range probed.Cells {
		h := r.health[c.ID]
		if h == nil {
			continue // removed by SetCells during the round
		}
		if current != probed {
			if now, ok := current.Cell(c.ID); !ok || now.API != c.API {
				continue // probed at an address that is no longer the cell's
			}
		}
		res := results[i]
		h.lastAt = res.at
		ok := res.err == nil
		if ok {
			h.sessions = res.st.Sessions
			h.reported = res.st.State
			h.version = res.st.Version
			h.lastErr = ""
		} else {
			h.lastErr = res.err.Error()
			r.m.probeFailures.WithLabelValues(c.ID).Inc()
		}
		if h.record(ok, r.cfg.FailThreshold, r.cfg.RiseThreshold) {
			if h.up {
				r.log.Info("cell up", "cell", c.ID, "sessions", h.sessions)
			} else {
				r.log.Warn("cell down", "cell", c.ID, "failures", h.fails, "error", h.lastErr)
			}
		} else if !ok && h.up {
			r.log.Debug("cell probe failed", "cell", c.ID, "failures", h.fails, "error", h.lastErr)
		}
	}
	r.publishLocked()
}

// publishLocked builds a new immutable view from cells and health and
// updates the per-cell gauges. r.mu must be held.
func (r *Router) publishLocked() {
	v := &view{
		version:   r.cells.Version,
		cells:     make([]cellView, len(r.cells.Cells)),
		index:     make(map[string]int, len(r.cells.Cells)),
		overrides: r.routing.Overrides,
	}
	for i, c := range r.cells.Cells {
		h := r.health[c.ID]
		operator := r.routing.CellStates[c.ID]
		v.cells[i] = cellView{
			Cell:        c,
			configState: c.State,
			operator:    operator,
			up:          h.up,
			sessions:    h.sessions,
			reported:    h.reported,
			fails:       h.fails,
			version:     h.version,
			lastErr:     h.lastErr,
			lastAt:      h.lastAt,
		}
		v.cells[i].State = effectiveState(c.State, operator)
		cv := &v.cells[i]
		v.cands = append(v.cands, placement.Candidate{ID: c.ID, Region: c.Region, Accepts: cv.acceptsNew(), Sessions: cv.sessions, Capacity: c.Capacity})
		v.anyUp = v.anyUp || cv.acceptsNew()
		v.index[c.ID] = i
		up := 0.0
		if h.up {
			up = 1
		}
		r.m.cellUp.WithLabelValues(c.ID).Set(up)
		r.m.cellSessions.WithLabelValues(c.ID).Set(float64(h.sessions))
	}
	r.view.Store(v)
}
