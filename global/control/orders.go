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
	var after int64
	for k, vs := range r.URL.Query() {
		if k != "after" || len(vs) != 1 {
			httpapi.WriteError(w, r, nil, apierr.New(apierr.BadRequest, "the only query parameter is after, given once"))
			return
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 {
			httpapi.WriteError(w, r, nil, apierr.New(apierr.BadRequest, "after must be a non-negative integer"))
			return
		}
		after = n
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
	moves, err := s.dir.Moves(r.Context(), c.ID, after, directory.MaxMovesPage)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	gateways := map[string]string{}
	for _, cl := range s.health.Cells().Cells {
		gateways[cl.ID] = cl.Gateway
	}
	for _, mv := range moves {
		orders.Moves = append(orders.Moves, MoveEntry{
			Seq: mv.Seq, PlayerID: mv.PlayerID, From: mv.From, To: mv.To, ToGateway: gateways[mv.To], At: mv.At,
		})
		orders.Next = mv.Seq
	}
	orders.More = len(moves) == directory.MaxMovesPage
	httpapi.WriteJSON(w, http.StatusOK, orders)
}
