package control

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/router"
)

// routingSnapshot is the encoded routing table every router and cell
// process polls, built once per refresh rather than once per request.
type routingSnapshot struct {
	body []byte
	etag string
	resp RoutingResponse
}

// StoreRouting reads the routing table straight from a directory store, for
// a router that reads the database itself instead of the control plane.
type StoreRouting struct {
	Store interface {
		Overrides(ctx context.Context) ([]directory.Override, error)
		CellStates(ctx context.Context) ([]directory.CellState, error)
	}
}

var _ router.RoutingSource = StoreRouting{}

// Routing implements router.RoutingSource.
func (s StoreRouting) Routing(ctx context.Context) (router.Routing, error) {
	resp, err := s.load(ctx)
	if err != nil {
		return router.Routing{}, err
	}
	return resp.Routing(), nil
}

func (s StoreRouting) load(ctx context.Context) (RoutingResponse, error) {
	states, err := s.Store.CellStates(ctx)
	if err != nil {
		return RoutingResponse{}, err
	}
	overrides, err := s.Store.Overrides(ctx)
	if err != nil {
		return RoutingResponse{}, err
	}
	return buildRouting(states, overrides), nil
}

// buildRouting groups the override table by cell; every list is sorted, so
// equal tables encode to equal bytes (and ETags).
func buildRouting(states []directory.CellState, overrides []directory.Override) RoutingResponse {
	resp := RoutingResponse{
		CellStates:      make([]CellStateEntry, 0, len(states)),
		Pins:            map[string][]string{},
		Quarantined:     []string{},
		QuarantineCells: map[string][]string{},
	}
	for _, st := range states {
		resp.CellStates = append(resp.CellStates, cellStateEntry(st))
	}
	for _, o := range overrides {
		switch {
		case o.Kind == directory.Pin:
			resp.Pins[o.Cell] = append(resp.Pins[o.Cell], o.PlayerID)
		case o.Kind == directory.Quarantine && o.Cell == "":
			resp.Quarantined = append(resp.Quarantined, o.PlayerID)
		case o.Kind == directory.Quarantine:
			resp.QuarantineCells[o.Cell] = append(resp.QuarantineCells[o.Cell], o.PlayerID)
		}
	}
	for _, m := range []map[string][]string{resp.Pins, resp.QuarantineCells} {
		for _, ids := range m {
			slices.Sort(ids)
		}
	}
	slices.Sort(resp.Quarantined)
	return resp
}

func cellStateEntry(st directory.CellState) CellStateEntry {
	return CellStateEntry{
		Cell: st.Cell, State: st.State, DrainBatch: st.DrainBatch, DrainIntervalMS: st.DrainInterval.Milliseconds(),
		Reason: st.Reason, By: st.By, Since: st.Since,
	}
}

// Routing converts the wire form into what a router applies. Player ids
// are canonicalised, since resolve looks them up in canonical form;
// entries that are not UUIDs cannot match any player and are dropped.
func (resp RoutingResponse) Routing() router.Routing {
	rt := router.Routing{
		CellStates: make(map[string]config.CellState, len(resp.CellStates)),
		Overrides:  make(map[string]router.Override, len(resp.Quarantined)),
	}
	for _, st := range resp.CellStates {
		rt.CellStates[st.Cell] = config.CellState(st.State)
	}
	add := func(ids []string, o router.Override) {
		for _, id := range ids {
			if p, err := canonicalPlayer(id); err == nil {
				rt.Overrides[p] = o
			}
		}
	}
	for cell, ids := range resp.Pins {
		add(ids, router.Override{Kind: router.OverridePin, Cell: cell})
	}
	add(resp.Quarantined, router.Override{Kind: router.OverrideQuarantine})
	for cell, ids := range resp.QuarantineCells {
		add(ids, router.Override{Kind: router.OverrideQuarantine, Cell: cell})
	}
	return rt
}

// refresh rebuilds the routing snapshot from the store and has the health
// view apply it.
func (s *Server) refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	resp, err := StoreRouting{Store: s.dir}.load(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("control: encode routing: %w", err)
	}
	sum := sha256.Sum256(body)
	s.routing.Store(&routingSnapshot{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`, resp: resp})
	if rs, ok := s.health.(routingSetter); ok {
		rs.SetRouting(resp.Routing())
	}
	return nil
}

// changed is called after every write to the routing table: the answer to
// the operator reflects it, and so does the next poll of every router.
func (s *Server) changed(ctx context.Context) {
	// A bounded wait: the write is done, only its propagation is at stake,
	// and the next periodic refresh catches up anyway.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.refresh(rctx); err != nil {
		s.log.Warn("routing table rebuild after a write failed", "error", err)
	}
}

func (s *Server) snapshot(ctx context.Context) (*routingSnapshot, error) {
	if snap := s.routing.Load(); snap != nil {
		return snap, nil
	}
	if err := s.refresh(ctx); err != nil {
		return nil, apierr.Wrap("control.Routing", apierr.Unavailable, "routing table unavailable, retry later", err)
	}
	return s.routing.Load(), nil
}

// getRouting serves the routing snapshot with a strong ETag; pollers that
// send it back in If-None-Match get 304 and no body until it changes.
func (s *Server) getRouting(w http.ResponseWriter, r *http.Request) {
	snap, err := s.snapshot(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("ETag", snap.etag)
	w.Header().Set("Cache-Control", "no-cache")
	if matchesETag(r.Header.Get("If-None-Match"), snap.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(snap.body)
}

// matchesETag implements If-None-Match's weak comparison over a list.
func matchesETag(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
