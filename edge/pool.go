package edge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
)

const (
	// redialPause is how long after a failed dial a cell's link is not
	// dialled again on demand: a thousand sessions failing over at once
	// must not become a thousand dials to a dead address.
	redialPause = 200 * time.Millisecond
	// maxRedialBackoff caps the background redial of a lost link.
	maxRedialBackoff = 5 * time.Second
)

// pool keeps one backbone link per cell: dialled at start, redialled in
// the background when lost, and on demand when a session needs it.
type pool struct {
	e    *Edge
	cred func(context.Context) (string, error)

	mu    sync.Mutex
	cells map[string]*cellLink
	all   map[*backbone.Client]struct{} // every live link, GOAWAY'd ones included
}

type cellLink struct {
	cell     string
	cl       *backbone.Client // the link new sessions use; nil before the first dial
	dialing  chan struct{}    // closed when the dial in progress ends
	lastErr  error
	failedAt time.Time
}

func newPool(e *Edge, cred func(context.Context) (string, error)) *pool {
	return &pool{e: e, cred: cred, cells: map[string]*cellLink{}, all: map[*backbone.Client]struct{}{}}
}

// warm links to every cell that has a backbone, in the background, and
// keeps each link up: failover then finds its link already there.
func (p *pool) warm() {
	for _, c := range p.e.cells.Cells {
		if c.Backbone == "" || c.State == config.StateDisabled {
			continue
		}
		p.e.wg.Add(1)
		go p.maintain(c.ID)
	}
}

func (p *pool) maintain(cell string) {
	defer p.e.wg.Done()
	ctx := p.e.base
	backoff := 50 * time.Millisecond
	for {
		cl, err := p.get(ctx, cell)
		if err == nil {
			backoff = 50 * time.Millisecond
			select {
			case <-cl.Done():
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, maxRedialBackoff)
	}
}

// get returns a usable link to cell, dialling one if needed. Concurrent
// callers share one dial; right after a failed dial they fail at once.
func (p *pool) get(ctx context.Context, cell string) (*backbone.Client, error) {
	c, ok := p.e.cells.Cell(cell)
	if !ok || c.Backbone == "" {
		return nil, apierr.New(apierr.Unavailable, "cell %s has no backbone address in cells.yaml", cell)
	}
	p.mu.Lock()
	cl := p.cells[cell]
	if cl == nil {
		cl = &cellLink{cell: cell}
		p.cells[cell] = cl
	}
	for {
		if cl.cl != nil && cl.cl.Usable() {
			c := cl.cl
			p.mu.Unlock()
			return c, nil
		}
		if cl.dialing != nil {
			ch := cl.dialing
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, apierr.Wrap("edge.link", apierr.Unavailable, "no backbone link to "+cell, ctx.Err())
			}
			p.mu.Lock()
			continue
		}
		if cl.lastErr != nil && time.Since(cl.failedAt) < redialPause {
			err := cl.lastErr
			p.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		cl.dialing = ch
		p.mu.Unlock()
		nc, err := p.dial(ctx, cell, c.Backbone)
		p.mu.Lock()
		cl.dialing = nil
		close(ch)
		if err != nil {
			cl.lastErr, cl.failedAt = err, time.Now()
			p.mu.Unlock()
			return nil, err
		}
		cl.cl, cl.lastErr = nc, nil
		p.all[nc] = struct{}{}
		p.mu.Unlock()
		p.e.m.links.WithLabelValues(cell).Inc()
		go func() {
			<-nc.Done()
			p.mu.Lock()
			delete(p.all, nc)
			p.mu.Unlock()
			p.e.m.links.WithLabelValues(cell).Dec()
			p.e.log.LogAttrs(context.Background(), slog.LevelWarn, "edge: backbone link lost",
				slog.String("cell", cell), slog.Any("error", nc.Err()))
		}()
		return nc, nil
	}
}

func (p *pool) dial(ctx context.Context, cell, addr string) (*backbone.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.e.cfg.DialTimeout)
	defer cancel()
	tok, err := p.cred(ctx)
	if err != nil {
		p.e.m.dials.WithLabelValues(cell, "no_credential").Inc()
		return nil, apierr.Wrap("edge.link", apierr.Internal, "no backbone credential", err)
	}
	cl, err := backbone.Dial(ctx, addr, backbone.ClientConfig{
		Edge: p.e.cfg.ID, Token: tok, Keepalive: p.e.cfg.Keepalive, DeadAfter: p.e.cfg.DeadAfter,
		WriteTimeout: p.e.cfg.WriteTimeout, HandshakeTimeout: p.e.cfg.DialTimeout,
	})
	if err != nil {
		p.e.m.dials.WithLabelValues(cell, string(apierr.CodeOf(err))).Inc()
		p.e.log.LogAttrs(ctx, slog.LevelDebug, "edge: backbone dial failed", slog.String("cell", cell), slog.Any("error", err))
		if _, coded := apierr.From(err); !coded {
			err = apierr.Wrap("edge.link", apierr.Unavailable, "cannot link to cell "+cell, err)
		}
		return nil, err
	}
	if w := cl.Welcome(); w.Cell != cell {
		cl.Close()
		p.e.m.dials.WithLabelValues(cell, "wrong_cell").Inc()
		return nil, apierr.New(apierr.Unavailable, "the backbone of cell %s answers as cell %q", cell, w.Cell)
	}
	p.e.m.dials.WithLabelValues(cell, "ok").Inc()
	p.e.log.LogAttrs(ctx, slog.LevelInfo, "edge: backbone linked", slog.String("cell", cell), slog.String("addr", addr))
	return cl, nil
}

// status says, for every cell with a backbone, whether a usable link to it
// is up.
func (p *pool) status() map[string]bool {
	out := map[string]bool{}
	for _, c := range p.e.cells.Cells {
		if c.Backbone != "" && c.State != config.StateDisabled {
			out[c.ID] = false
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, cl := range p.cells {
		if _, ok := out[id]; ok && cl.cl != nil {
			out[id] = cl.cl.Usable()
		}
	}
	return out
}

// close ends every link.
func (p *pool) close() {
	p.mu.Lock()
	links := make([]*backbone.Client, 0, len(p.all))
	for cl := range p.all {
		links = append(links, cl)
	}
	p.mu.Unlock()
	for _, cl := range links {
		cl.Close()
	}
}
