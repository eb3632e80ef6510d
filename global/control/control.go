// Package control is livecell's global control plane as a service: the one
// process that owns the player → home-cell directory and the health of every
// cell, served over HTTP to the other processes of a deployment.
//
//	GET /v1/directory/{player}   → Entry, or 404 unknown_player
//	PUT /v1/directory/{player}   SetHomeRequest → Entry (server credential
//	                             with ScopeDirectoryWrite only)
//	GET /v1/cells                → CellsResponse: health and load of every cell
//
// Cells' accounts services write a new player's home through Client.SetHome;
// routers read homes through Client.Home, behind a HomeCache so that they
// keep answering known players while the control plane is down. Reads are
// open: the router publishes the same mapping on /v1/resolve. Writes are
// not: a player token can never move a player, and neither can a server
// credential without the directory scope.
//
// The directory itself is pluggable (global/directory: embedded Memory for a
// local world, PostgreSQL or CockroachDB in production), and so is health:
// the process wires the router's prober (router.Router.Cells), so the control
// plane and the routers judge health by the same rules, with the same
// hysteresis.
package control

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// HTTP paths of the control plane.
const (
	// PathDirectory + "{player}": GET → Entry; PUT SetHomeRequest → Entry.
	PathDirectory = "/v1/directory/"
	// PathCells: GET → CellsResponse.
	PathCells = "/v1/cells"
)

// ScopeDirectoryWrite is the scope a server credential needs to write the
// directory. A dedicated server's credential (scope match.results, say)
// must not be able to rehome players.
const ScopeDirectoryWrite = "directory.write"

// maxBody bounds a PUT body: {"cell":"<32 bytes>"} is far smaller.
const maxBody = 1 << 10

// Entry is one player's directory entry.
type Entry struct {
	PlayerID string `json:"player_id"`
	Cell     string `json:"cell"`
}

// SetHomeRequest is the body of PUT PathDirectory{player}.
type SetHomeRequest struct {
	Cell string `json:"cell"`
}

// CellsResponse is the body of GET PathCells: the same view the routers
// serve on their own /v1/cells, so one decoder reads both.
type CellsResponse = router.CellsResponse

// directoryStore is what the control plane needs of the player directory;
// directory.Memory and directory.Postgres implement it.
type directoryStore interface {
	Home(ctx context.Context, playerID string) (string, error)
	SetHome(ctx context.Context, playerID, cellID string) error
}

// healthSource reports every cell with its health; router.Router does.
type healthSource interface {
	Cells() router.CellsResponse
}

// credentialVerifier checks a bearer token; token.Verifier does.
type credentialVerifier interface {
	Verify(tok, audience string) (token.Claims, error)
}

var (
	_ healthSource       = (*router.Router)(nil)
	_ credentialVerifier = (*token.Verifier)(nil)
)

// Deps are the control plane's collaborators; all but Logger are required.
type Deps struct {
	Logger    *slog.Logger // nil discards
	Directory directoryStore
	Health    healthSource
	Verifier  credentialVerifier
}

// Server is the control plane's HTTP API.
type Server struct {
	log    *slog.Logger
	dir    directoryStore
	health healthSource
	verify credentialVerifier
}

// New returns a control plane serving deps.
func New(deps Deps) (*Server, error) {
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
	return &Server{log: deps.Logger, dir: deps.Directory, health: deps.Health, verify: deps.Verifier}, nil
}

// Handler serves the control plane's API. It is a bare http.ServeMux so
// that telemetry.InstrumentHTTP labels metrics with the matched route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathDirectory+"{player}", s.getHome)
	mux.HandleFunc("PUT "+PathDirectory+"{player}", s.putHome)
	mux.HandleFunc(PathDirectory+"{player}", allow("GET, HEAD, PUT"))
	mux.HandleFunc("GET "+PathCells, s.getCells)
	mux.HandleFunc(PathCells, allow("GET, HEAD"))
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

func (s *Server) putHome(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authorizeWrite(r)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	player, err := canonicalPlayer(r.PathValue("player"))
	if err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	var req SetHomeRequest
	if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
		httpapi.WriteError(w, r, nil, err)
		return
	}
	// A home outside cells.yaml would strand the player: the router refuses
	// to guess where such a player's data lives.
	if !s.knownCell(req.Cell) {
		httpapi.WriteError(w, r, nil, apierr.New(apierr.BadRequest, "cell %q is not in cells.yaml", req.Cell))
		return
	}
	if err := s.dir.SetHome(r.Context(), player, req.Cell); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	s.log.Info("home set", "player", player, "cell", req.Cell, "by", claims.Subject)
	httpapi.WriteJSON(w, http.StatusOK, Entry{PlayerID: player, Cell: req.Cell})
}

// authorizeWrite admits server credentials that carry ScopeDirectoryWrite.
// A player token fails the audience check, whatever it claims.
func (s *Server) authorizeWrite(r *http.Request) (token.Claims, error) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return token.Claims{}, err
	}
	claims, err := s.verify.Verify(tok, token.AudienceServer)
	if err != nil {
		return token.Claims{}, err
	}
	if !claims.HasScope(ScopeDirectoryWrite) {
		return token.Claims{}, apierr.New(apierr.PermissionDenied, "credential lacks scope %s", ScopeDirectoryWrite)
	}
	return claims, nil
}

func (s *Server) knownCell(id string) bool {
	return slices.ContainsFunc(s.health.Cells().Cells, func(c router.CellHealth) bool { return c.ID == id })
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

func allow(methods string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", methods)
		httpapi.WriteError(w, r, nil, apierr.New(apierr.MethodNotAllowed, "allowed: %s", methods))
	}
}
