package router

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/livecell/livecell/internal/config"
)

// WatchConfig configures WatchCellsFile.
type WatchConfig struct {
	Path     string        // cells.yaml to watch; required
	Interval time.Duration // between checks; default 3s
	// Apply receives every new valid cells.yaml. Default: the router's
	// SetCells. A process that discovers endpoints through Consul passes
	// the registry's SetCells instead, and feeds the router from there.
	Apply func(*config.Cells)
}

// WatchCellsFile checks cfg.Path every Interval until ctx is done and
// applies each valid change. A file that is unreadable or invalid never
// replaces the running config: the router keeps its last good cells.yaml,
// logs the error with its line numbers and counts it in
// livecell_router_config_reload_errors_total (once per distinct bad
// content, not once per check). Applied changes count in
// livecell_router_config_reloads_total.
//
// It polls rather than using inotify on purpose: no dependency, and it sees
// the symlink swap by which Kubernetes updates a mounted ConfigMap, which
// an inotify watch on the file would miss. The file is read only when its
// modification time or size changed, and applied only when its content
// (SHA-256) did. The first check applies the file as it is then, silently,
// in case it changed since the process loaded it.
func (r *Router) WatchCellsFile(ctx context.Context, cfg WatchConfig) error {
	if cfg.Path == "" {
		return errors.New("router: WatchConfig.Path is empty")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.Apply == nil {
		cfg.Apply = r.SetCells
	}
	w := &cellsFile{r: r, cfg: cfg}
	w.check(true)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.check(false)
		}
	}
}

// cellsFile is the watcher's memory of the file between checks.
type cellsFile struct {
	r       *Router
	cfg     WatchConfig
	modTime time.Time
	size    int64
	sum     [sha256.Size]byte // of the last content read, good or bad
	lastErr string            // of the current bad state; "" when good
	ids     []string          // cell ids of the last applied file
}

func (w *cellsFile) check(first bool) {
	fi, err := os.Stat(w.cfg.Path)
	if err != nil {
		w.unreadable(err)
		return
	}
	if !first && fi.ModTime().Equal(w.modTime) && fi.Size() == w.size {
		return
	}
	data, err := os.ReadFile(w.cfg.Path)
	if err != nil {
		w.unreadable(err)
		return
	}
	w.modTime, w.size = fi.ModTime(), fi.Size()
	sum := sha256.Sum256(data)
	if !first && sum == w.sum {
		// Touched, rewritten with the same bytes, or back after being
		// unreadable: the running config already reflects this content
		// (or, if it was bad, it was counted when first seen).
		w.lastErr = ""
		return
	}
	w.sum = sum
	cells, err := config.Parse(data)
	if err != nil {
		if ve, ok := errors.AsType[*config.ValidationError](err); ok {
			ve.File = w.cfg.Path
		}
		w.fail(err)
		return
	}
	w.lastErr = ""
	w.cfg.Apply(cells)
	ids := cells.IDs()
	if !first {
		w.r.m.reloads.Inc()
		w.r.log.Info("cells.yaml reloaded", "path", w.cfg.Path, "cells", ids,
			"added", missing(ids, w.ids), "removed", missing(w.ids, ids))
	}
	for _, p := range cells.Warnings() {
		w.r.log.Warn("cells.yaml warning", "path", w.cfg.Path, "warning", p.In(w.cfg.Path))
	}
	w.ids = ids
}

// unreadable records a missing or unreadable file; it is read again as soon
// as it can be.
func (w *cellsFile) unreadable(err error) {
	w.modTime, w.size = time.Time{}, -1
	w.fail(fmt.Errorf("router: cells.yaml: %w", err))
}

// fail records a bad state, logged and counted once however many checks
// see it.
func (w *cellsFile) fail(err error) {
	msg := err.Error()
	if msg == w.lastErr {
		return
	}
	w.lastErr = msg
	w.r.m.reloadErrors.Inc()
	w.r.log.Error("cells.yaml rejected; keeping the last good config", "path", w.cfg.Path, "error", msg)
}

// missing returns the ids of a that are not in b.
func missing(a, b []string) []string {
	var out []string
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}
