// Package control is livecell's global control plane as a service: the one
// process that owns the player → home-cell directory, the override table,
// the cells' run-time states and the health of every cell, served over
// HTTP to the other processes of a deployment (docs/openapi/control.yaml).
//
//	GET    /v1/directory/{player}      → Entry, or 404 unknown_player
//	PUT    /v1/directory/{player}      SetHomeRequest → Entry (ScopeDirectoryWrite):
//	                                   a cell records the home of a player it created
//	GET    /v1/cells                   → CellsResponse: health, load and state of every cell
//	GET    /v1/routing                 → RoutingResponse: cell states and overrides, for routers and cells
//	GET    /v1/cells/{cell}/orders     → Orders: drain and redirect markers, for the cell's processes
//	GET    /v1/moves                   → MovesResponse: every rehome, for routers' home caches
//	PUT    /v1/cells/{cell}/drain      DrainRequest → DrainState (ScopeAdmin)
//	DELETE /v1/cells/{cell}/drain      (ScopeAdmin)
//	GET    /v1/overrides               → OverridesResponse (ScopeAdmin)
//	PUT    /v1/overrides/{player}      OverrideRequest → OverrideEntry (ScopeAdmin)
//	DELETE /v1/overrides/{player}      (ScopeAdmin)
//	POST   /v1/players/{player}/rehome RehomeRequest → RehomeResult (ScopeAdmin)
//
// Placement: the control plane owns the rule (global/placement), routers
// run it on their cached view, and the decision becomes a fact here, when
// the chosen cell's accounts service records the new player's home with
// PUT /v1/directory. That write is insert-only: it refuses a cell that no
// longer takes new players (draining, disabled) and never moves a player
// who already has a home; moving a player is a rehome, which moves the
// player's data with the directory entry (db.Rehome) and leaves a redirect
// marker for the old cell.
//
// Routers and cells pull; the control plane never calls them. Every cell
// process polls its orders (a drain, redirect markers), so a cell with any
// number of processes, or one that restarts, converges on what the control
// plane holds, and the control plane needs no credential for the cells.
// Reads are open, as the directory's always were (the router publishes the
// same mapping on /v1/resolve): the control plane's address is internal.
// Writes need a server credential with the right scope; a player token can
// never move a player.
//
// The directory store is pluggable (global/directory: embedded Memory for a
// local world, PostgreSQL or CockroachDB in production), and so is health:
// the process wires the router's prober (router.Router.Cells), which this
// server feeds with every routing table it builds, so the control plane and
// the routers judge health by the same rules, with the same hysteresis, and
// apply the same states.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/background"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// maxBody bounds a request body: the largest, an override with its reason,
// is well under a kilobyte.
const maxBody = 4 << 10

// Store is what the control plane needs of the directory;
// directory.Memory and directory.Postgres implement it.
type Store interface {
	Home(ctx context.Context, playerID string) (string, error)
	Place(ctx context.Context, playerID, cellID string) (home string, created bool, err error)

	SetOverride(ctx context.Context, o directory.Override) (directory.Override, error)
	ClearOverride(ctx context.Context, playerID string) (bool, error)
	Overrides(ctx context.Context) ([]directory.Override, error)

	RecordMove(ctx context.Context, playerID, from, to string) (directory.Move, error)
	Moves(ctx context.Context, cell string, after int64, limit int) ([]directory.Move, error)
	MoveHead(ctx context.Context) (int64, error)
	PruneMoves(ctx context.Context, before time.Time) (int, error)

	SetCellState(ctx context.Context, s directory.CellState) (directory.CellState, error)
	ClearCellState(ctx context.Context, cell string) (bool, error)
	CellStates(ctx context.Context) ([]directory.CellState, error)
}

// healthSource reports every cell with its health and effective state;
// router.Router does.
type healthSource interface {
	Cells() router.CellsResponse
}

// routingSetter is optionally implemented by a healthSource that applies
// the routing table (router.Router): the control plane hands it every table
// it builds, so the health view shows effective states at once.
type routingSetter interface {
	SetRouting(rt router.Routing)
}

// Mover moves a player's data and directory entry to another cell in one
// transaction; cmd wires db.Rehome over every component's schema.
type Mover interface {
	Rehome(ctx context.Context, playerID, cellID string) error
}

// credentialVerifier checks a bearer token; token.Verifier does.
type credentialVerifier interface {
	Verify(tok, audience string) (token.Claims, error)
}

var (
	_ Store              = (*directory.Memory)(nil)
	_ Store              = (*directory.Postgres)(nil)
	_ healthSource       = (*router.Router)(nil)
	_ routingSetter      = (*router.Router)(nil)
	_ credentialVerifier = (*token.Verifier)(nil)
)

// Config tunes the control plane. Zero fields take the defaults.
type Config struct {
	// RefreshInterval is how often the routing table served to routers is
	// rebuilt from the store (writes through this process rebuild it at
	// once); default 1s.
	RefreshInterval time.Duration
	// MoveRetention is how long redirect markers are kept: longer than any
	// credential that names the old cell lives (access tokens, resume
	// tokens). Default 24h.
	MoveRetention time.Duration
}

func (c *Config) setDefaults() {
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = time.Second
	}
	if c.MoveRetention <= 0 {
		c.MoveRetention = 24 * time.Hour
	}
}

// Deps are the control plane's collaborators; Directory, Health and
// Verifier are required.
type Deps struct {
	Logger    *slog.Logger // nil discards
	Directory Store
	Health    healthSource
	Verifier  credentialVerifier
	// Mover moves players' data on rehome. Without one (a control plane
	// without a database, whose cells each keep their own store) rehome
	// answers unavailable: moving only the directory entry would strand
	// the player away from their data.
	Mover Mover
}

// Server is the control plane's HTTP API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	dir    Store
	health healthSource
	verify credentialVerifier
	mover  Mover

	routing   atomic.Pointer[routingSnapshot]
	refreshMu sync.Mutex // one rebuild at a time, in order

	bg background.Loop // rebuilds and pruning
}

// New returns a control plane serving deps.
func New(cfg Config, deps Deps) (*Server, error) {
	var missing []string
	if deps.Directory == nil {
		missing = append(missing, "Directory")
	}
	if deps.Health == nil {
		missing = append(missing, "Health")
	}
	if deps.Verifier == nil {
		missing = append(missing, "Verifier")
	}
	if len(missing) > 0 {
		return nil, errors.New("control: Deps lacks " + strings.Join(missing, ", "))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	return &Server{cfg: cfg, log: deps.Logger, dir: deps.Directory, health: deps.Health, verify: deps.Verifier, mover: deps.Mover}, nil
}

// Start builds the routing table once, then keeps rebuilding it every
// RefreshInterval and pruning expired redirect markers, until Stop or ctx
// ends. A store that is down at start is not an error: routers keep their
// last table, and the first successful rebuild serves it.
func (s *Server) Start(ctx context.Context) error {
	if s.bg.Running() {
		return fmt.Errorf("control: %w", background.ErrRunning)
	}
	if err := s.refresh(ctx); err != nil {
		s.log.Warn("routing table not built at start", "error", err)
	}
	if err := s.bg.Start(ctx, s.loop); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// Stop ends the background work and waits for it, or for ctx.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.bg.Stop(ctx); err != nil {
		return fmt.Errorf("control: stop: %w", err)
	}
	return nil
}

func (s *Server) loop(ctx context.Context) {
	refresh := time.NewTicker(s.cfg.RefreshInterval)
	defer refresh.Stop()
	// Markers expire by the hour; pruning more often would only add load.
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			err := s.refresh(ctx)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				s.log.Warn("routing table rebuild failed; serving the last one", "error", err)
			case err == nil && failing:
				s.log.Info("routing table rebuilt again")
			}
			failing = err != nil
		case <-prune.C:
			if n, err := s.dir.PruneMoves(ctx, time.Now().Add(-s.cfg.MoveRetention)); err != nil {
				s.log.Warn("pruning redirect markers", "error", err)
			} else if n > 0 {
				s.log.Info("redirect markers pruned", "count", n)
			}
		}
	}
}

// Handler serves the control plane's API. It is a bare http.ServeMux so
// that telemetry.InstrumentHTTP labels metrics with the matched route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/directory/{player}", s.getHome)
	mux.HandleFunc("PUT /v1/directory/{player}", s.putHome)
	mux.HandleFunc("/v1/directory/{player}", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead, http.MethodPut))
	mux.HandleFunc("GET /v1/cells", s.getCells)
	mux.HandleFunc("/v1/cells", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("GET /v1/routing", s.getRouting)
	mux.HandleFunc("/v1/routing", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("GET /v1/moves", s.getMoves)
	mux.HandleFunc("/v1/moves", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("GET /v1/cells/{cell}/orders", s.getOrders)
	mux.HandleFunc("/v1/cells/{cell}/orders", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("PUT /v1/cells/{cell}/drain", s.putDrain)
	mux.HandleFunc("DELETE /v1/cells/{cell}/drain", s.deleteDrain)
	mux.HandleFunc("/v1/cells/{cell}/drain", httpapi.MethodNotAllowed(http.MethodPut, http.MethodDelete))
	mux.HandleFunc("GET /v1/overrides", s.getOverrides)
	mux.HandleFunc("/v1/overrides", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("PUT /v1/overrides/{player}", s.putOverride)
	mux.HandleFunc("DELETE /v1/overrides/{player}", s.deleteOverride)
	mux.HandleFunc("/v1/overrides/{player}", httpapi.MethodNotAllowed(http.MethodPut, http.MethodDelete))
	mux.HandleFunc("POST /v1/players/{player}/rehome", s.postRehome)
	mux.HandleFunc("/v1/players/{player}/rehome", httpapi.MethodNotAllowed(http.MethodPost))
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

func (s *Server) getHome(w http.ResponseWriter, r *http.Request) {
	player, err := canonicalPlayer(r.PathValue("player"))
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	cell, err := s.dir.Home(r.Context(), player)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, Entry{PlayerID: player, Cell: cell})
}

// putHome records a new player's home: the placement becoming a fact.
func (s *Server) putHome(w http.ResponseWriter, r *http.Request) {
	claims, player, ok := s.playerCall(w, r, ScopeDirectoryWrite)
	if !ok {
		return
	}
	var req SetHomeRequest
	if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	// A home outside cells.yaml would strand the player: the router refuses
	// to guess where such a player's data lives.
	c, err := s.knownCell(req.Cell)
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	home, err := s.dir.Home(r.Context(), player)
	switch {
	case err == nil && home == req.Cell:
		// A retry of a write that succeeded: same answer.
		httpapi.WriteJSON(w, http.StatusOK, Entry{PlayerID: player, Cell: home})
		return
	case err == nil:
		httpapi.WriteError(w, r, nil, apierr.New(apierr.Conflict, "player is homed in cell %s; moving a player is a rehome", home))
		return
	case apierr.CodeOf(err) != apierr.UnknownPlayer:
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	// A router's view may be seconds old: the control plane has the last
	// word on whether a cell still takes new players.
	if c.State != string(config.StateActive) {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.Draining, "cell %s is %s and takes no new players: resolve again", c.ID, c.State))
		return
	}
	home, created, err := s.dir.Place(r.Context(), player, req.Cell)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if !created && home != req.Cell {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.Conflict, "player is homed in cell %s; moving a player is a rehome", home))
		return
	}
	s.log.Info("home set", "player", player, "cell", req.Cell, "by", claims.Subject)
	httpapi.WriteJSON(w, http.StatusOK, Entry{PlayerID: player, Cell: req.Cell})
}

// authorize admits server credentials that carry scope. A player token
// fails the audience check, whatever it claims.
func (s *Server) authorize(r *http.Request, scope string) (token.Claims, error) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return token.Claims{}, err
	}
	claims, err := s.verify.Verify(tok, token.AudienceServer)
	if err != nil {
		return token.Claims{}, err
	}
	if !claims.HasScope(scope) {
		return token.Claims{}, apierr.New(apierr.PermissionDenied, "credential lacks scope %s", scope)
	}
	return claims, nil
}

// cell returns a cell of cells.yaml as the health view has it, with its
// effective state.
// playerCall authorizes r for scope and reads its {player}; on failure it
// has answered and ok is false.
func (s *Server) playerCall(w http.ResponseWriter, r *http.Request, scope string) (claims token.Claims, player string, ok bool) {
	claims, err := s.authorize(r, scope)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return token.Claims{}, "", false
	}
	if player, err = canonicalPlayer(r.PathValue("player")); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return token.Claims{}, "", false
	}
	return claims, player, true
}

// knownCell is cell id, or bad_request: a cell outside cells.yaml would
// strand whoever is sent there.
func (s *Server) knownCell(id string) (router.CellHealth, error) {
	c, ok := s.cell(id)
	if !ok {
		return router.CellHealth{}, apierr.New(apierr.BadRequest, "cell %q is not in cells.yaml", id)
	}
	return c, nil
}

func (s *Server) cell(id string) (router.CellHealth, bool) {
	for _, c := range s.health.Cells().Cells {
		if c.ID == id {
			return c, true
		}
	}
	return router.CellHealth{}, false
}

func (s *Server) getCells(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.health.Cells())
}

// canonicalPlayer accepts only the 36-character UUID form and returns it
// lower-cased, the form accounts issues and the directory stores.
func canonicalPlayer(s string) (string, error) {
	if len(s) != 36 {
		return "", apierr.New(apierr.BadRequest, "player must be a UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", apierr.New(apierr.BadRequest, "player must be a UUID")
	}
	return id.String(), nil
}
