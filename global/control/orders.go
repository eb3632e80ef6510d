package control

import (
	"net/http"
	"strconv"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
)

// getOrders tells one cell's processes what to do now: whether to drain
// (and where to send players) and which players moved from or to the cell
// since the cursor they pass in after.
func (s *Server) getOrders(w http.ResponseWriter, r *http.Request) {
	c, ok := s.cell(r.PathValue("cell"))
	if !ok {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.NotFound, "no such cell in cells.yaml"))
		return
	}
	after, _, err := cursor(r)
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	snap, err := s.snapshot(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	orders := Orders{Cell: c.ID, State: c.State, Moves: []MoveEntry{}, Next: after}
	if c.State == string(config.StateDraining) {
		d := DrainOrder{Batch: DefaultDrainBatch, IntervalMS: DefaultDrainInterval.Milliseconds()}
		for _, st := range snap.resp.CellStates {
			if st.Cell == c.ID {
				d.Batch, d.IntervalMS = st.DrainBatch, st.DrainIntervalMS
			}
		}
		if t, ok := s.drainTarget(c.ID); ok {
			d.TargetCell, d.TargetGateway = t.ID, t.Gateway
		}
		orders.Drain = d
	}
	orders.Moves, orders.Next, orders.More, err = s.moves(r, c.ID, after)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, orders)
}

// getMoves serves every cell's redirect markers after the cursor; without
// one, the cursor to follow from (the latest move), so that a router that
// starts with an empty cache does not read history it has no use for.
func (s *Server) getMoves(w http.ResponseWriter, r *http.Request) {
	after, given, err := cursor(r)
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	out := MovesResponse{Moves: []MoveEntry{}}
	if !given {
		if out.Next, err = s.dir.MoveHead(r.Context()); err != nil {
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
		return
	}
	if out.Moves, out.Next, out.More, err = s.moves(r, "", after); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// cursor reads the only query parameter of the move feeds, after.
func cursor(r *http.Request) (after int64, given bool, err error) {
	for k, vs := range r.URL.Query() {
		if k != "after" || len(vs) != 1 {
			return 0, false, apierr.New(apierr.BadRequest, "the only query parameter is after, given once")
		}
		n, perr := strconv.ParseInt(vs[0], 10, 64)
		if perr != nil || n < 0 {
			return 0, false, apierr.New(apierr.BadRequest, "after must be a non-negative integer")
		}
		after, given = n, true
	}
	return after, given, nil
}

// moves reads a page of redirect markers from or to cell (all when empty)
// after the cursor, with the gateway of each new cell.
func (s *Server) moves(r *http.Request, cell string, after int64) (out []MoveEntry, next int64, more bool, err error) {
	moves, err := s.dir.Moves(r.Context(), cell, after, directory.MaxMovesPage)
	if err != nil {
		return nil, 0, false, err
	}
	gateways := map[string]string{}
	for _, cl := range s.health.Cells().Cells {
		gateways[cl.ID] = cl.Gateway
	}
	out, next = []MoveEntry{}, after
	for _, mv := range moves {
		out = append(out, MoveEntry{Seq: mv.Seq, PlayerID: mv.PlayerID, From: mv.From, To: mv.To, ToGateway: gateways[mv.To], At: mv.At})
		next = mv.Seq
	}
	return out, next, len(moves) == directory.MaxMovesPage, nil
}
