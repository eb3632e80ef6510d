package control

import (
	"net/http"
	"time"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/router"
)

// putDrain sets a cell draining: routers place no new player there and
// send its players to its failover cell, and the cell's processes tell
// their connected players to move, Batch at a time every IntervalMS.
// Setting it again changes the rate of a running drain.
func (s *Server) putDrain(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authorize(r, ScopeAdmin)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	c, ok := s.cell(r.PathValue("cell"))
	if !ok {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.NotFound, "no such cell in cells.yaml"))
		return
	}
	var req DrainRequest
	if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	if req.Batch == 0 {
		req.Batch = DefaultDrainBatch
	}
	if req.IntervalMS == 0 {
		req.IntervalMS = DefaultDrainInterval.Milliseconds()
	}
	if req.IntervalMS < 0 || req.IntervalMS > directory.MaxDrainInterval.Milliseconds() {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.BadRequest, "interval_ms must be 10 to 600000"))
		return
	}
	// New players must land somewhere: the same rule cells.yaml
	// validation applies ("at least one active cell").
	if c.State == string(config.StateActive) && !s.anotherActive(c.ID) {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.Conflict, "draining %s would leave no cell that takes new players", c.ID))
		return
	}
	st, err := s.dir.SetCellState(r.Context(), directory.CellState{
		Cell: c.ID, State: directory.CellStateDraining, DrainBatch: req.Batch,
		DrainInterval: time.Duration(req.IntervalMS) * time.Millisecond, Reason: req.Reason, By: claims.Subject,
	})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	s.changed(r.Context())
	s.log.Info("cell draining", "cell", c.ID, "batch", st.DrainBatch, "interval", st.DrainInterval, "reason", st.Reason, "by", claims.Subject)
	target, _ := s.drainTarget(c.ID)
	httpapi.WriteJSON(w, http.StatusOK, DrainState{
		Cell: st.Cell, State: st.State, Batch: st.DrainBatch, IntervalMS: st.DrainInterval.Milliseconds(),
		Reason: st.Reason, By: st.By, Since: st.Since, Target: target.ID,
	})
}

// deleteDrain ends an operator's drain: the cell takes players again
// (unless cells.yaml says otherwise). Players moved away stay where they
// are until they next resolve.
func (s *Server) deleteDrain(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authorize(r, ScopeAdmin)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	c, ok := s.cell(r.PathValue("cell"))
	if !ok {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.NotFound, "no such cell in cells.yaml"))
		return
	}
	cleared, err := s.dir.ClearCellState(r.Context(), c.ID)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if !cleared {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.NotFound, "cell %s is not being drained by an operator", c.ID))
		return
	}
	s.changed(r.Context())
	s.log.Info("cell drain ended", "cell", c.ID, "by", claims.Subject)
	w.WriteHeader(http.StatusNoContent)
}

// anotherActive reports whether a cell other than id takes new players.
func (s *Server) anotherActive(id string) bool {
	for _, c := range s.health.Cells().Cells {
		if c.ID != id && c.State == string(config.StateActive) {
			return true
		}
	}
	return false
}

// drainTarget is where a draining cell sends its players now: the first
// healthy, active cell of its failover list, as the routers choose.
func (s *Server) drainTarget(id string) (router.CellHealth, bool) {
	cells := s.health.Cells().Cells
	byID := make(map[string]router.CellHealth, len(cells))
	for _, c := range cells {
		byID[c.ID] = c
	}
	for _, f := range byID[id].Failover {
		if c, ok := byID[f]; ok && c.Up && c.State == string(config.StateActive) {
			return c, true
		}
	}
	return router.CellHealth{}, false
}

func (s *Server) getOverrides(w http.ResponseWriter, r *http.Request) {
	if _, err := s.authorize(r, ScopeAdmin); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	all, err := s.dir.Overrides(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	out := OverridesResponse{Overrides: make([]OverrideEntry, len(all))}
	for i, o := range all {
		out.Overrides[i] = overrideEntry(o)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func overrideEntry(o directory.Override) OverrideEntry {
	return OverrideEntry{PlayerID: o.PlayerID, Kind: string(o.Kind), Cell: o.Cell, Reason: o.Reason, By: o.By, At: o.At}
}

func (s *Server) putOverride(w http.ResponseWriter, r *http.Request) {
	claims, player, ok := s.playerCall(w, r, ScopeAdmin)
	if !ok {
		return
	}
	var req OverrideRequest
	if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	if req.Cell != "" {
		if _, err := s.knownCell(req.Cell); err != nil {
			httpapi.WriteError(w, r, nil, err)
			return
		}
	}
	o, err := s.dir.SetOverride(r.Context(), directory.Override{
		PlayerID: player, Kind: directory.OverrideKind(req.Kind), Cell: req.Cell, Reason: req.Reason, By: claims.Subject,
	})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	s.changed(r.Context())
	s.log.Info("override set", "player", player, "kind", o.Kind, "cell", o.Cell, "reason", o.Reason, "by", claims.Subject)
	httpapi.WriteJSON(w, http.StatusOK, overrideEntry(o))
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	claims, player, ok := s.playerCall(w, r, ScopeAdmin)
	if !ok {
		return
	}
	cleared, err := s.dir.ClearOverride(r.Context(), player)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if !cleared {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.NotFound, "the player has no override"))
		return
	}
	s.changed(r.Context())
	s.log.Info("override cleared", "player", player, "by", claims.Subject)
	w.WriteHeader(http.StatusNoContent)
}

// postRehome moves a player to another home cell: their data and directory
// entry in one transaction, then the redirect marker the old cell reads.
// The marker comes second on purpose: one that pointed at the new cell
// before the move committed would send the player to a cell the directory
// does not yet name, and the router straight back. If recording it fails,
// the move stands and the answer says how to record it again (From).
func (s *Server) postRehome(w http.ResponseWriter, r *http.Request) {
	claims, player, ok := s.playerCall(w, r, ScopeAdmin)
	if !ok {
		return
	}
	var req RehomeRequest
	if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	to, err := s.knownCell(req.Cell)
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	if req.From != "" {
		if _, err := s.knownCell(req.From); err != nil {
			httpapi.WriteError(w, r, nil, err)
			return
		}
	}
	if s.mover == nil {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.Unavailable,
			"rehome needs the control plane on the players' database (livecell control --database): this one keeps no player data to move"))
		return
	}
	from, err := s.dir.Home(r.Context(), player)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	res := RehomeResult{PlayerID: player, From: from, To: to.ID}
	if from == to.ID {
		if req.From == "" || req.From == to.ID {
			httpapi.WriteJSON(w, http.StatusOK, res)
			return
		}
		// Repair: the data already moved; record the marker it lacks.
		res.From = req.From
	} else {
		if to.State != string(config.StateActive) {
			httpapi.WriteError(w, r, nil, apierr.New(apierr.Conflict, "cell %s is %s and takes no new players", to.ID, to.State))
			return
		}
		if err := s.mover.Rehome(r.Context(), player, to.ID); err != nil {
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		res.Moved = true
	}
	mv, err := s.dir.RecordMove(r.Context(), player, res.From, to.ID)
	if err != nil {
		s.log.Error("rehome: redirect marker not recorded", "player", player, "from", res.From, "to", to.ID, "error", err)
		httpapi.WriteError(w, r, nil, apierr.Wrap("control.Rehome", apierr.Unavailable,
			"the player's data moved to "+to.ID+" but the old cell's redirect marker was not recorded: rehome again with from="+res.From, err))
		return
	}
	res.Seq = mv.Seq
	s.log.Info("player rehomed", "player", player, "from", res.From, "to", to.ID, "by", claims.Subject)
	httpapi.WriteJSON(w, http.StatusOK, res)
}
