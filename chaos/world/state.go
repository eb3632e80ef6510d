// Package world runs and describes the multi-process local world: the
// control plane, the routers, every cell and the edge relays as separate OS
// processes of the livecell binary on loopback. It is
// what chaos drills and cross-cell load tests run against, because only
// separate processes can be killed with SIGKILL the way a machine dies.
//
// The package knows processes, not livecell's flags: `livecell world up`
// (cmd/livecell/cli/world.go) decides what to run, a Launcher starts it and
// waits until each process is ready, and the State it leaves in
// <dir>/state.json tells `world down`, `world status`, the chaos drills and
// the load tester what runs where.
package world

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of the state file inside a world directory.
const StateFile = "state.json"

// StateVersion is the version of the state file format written here.
const StateVersion = 1

// Role is what a process does in the world.
type Role string

const (
	RoleControl Role = "control" // the control plane: directory and cell health
	RoleRouter  Role = "router"  // a global router; several run side by side
	RoleCell    Role = "cell"    // one process of a cell (all its services)
	// RoleEdge is an edge relay. Its Addrs are "tcp", "quic" and "ws", as
	// in the edges of cells.yaml, and "http" (metrics, /v1/status); its
	// Cell is the cell it is listed under (near, not part of it).
	RoleEdge Role = "edge"
)

// Address keys used in Process.Addrs.
const (
	AddrHTTP     = "http"     // control, router: the HTTP API
	AddrAPI      = "api"      // cell: the HTTP API (accounts, /v1/status)
	AddrGateway  = "gateway"  // cell: the TCP gateway
	AddrBackbone = "backbone" // cell: where edges link to the gateway
	AddrTCP      = "tcp"      // edge
	AddrQUIC     = "quic"     // edge
	AddrWS       = "ws"       // edge
)

// State is the content of <dir>/state.json.
type State struct {
	Version   int       `json:"version"`
	Dir       string    `json:"dir"` // absolute
	StartedAt time.Time `json:"started_at"`
	Binary    string    `json:"binary"` // the livecell binary every process runs
	// Config is the cells.yaml every process was started with: the
	// addresses in it are the ones in use.
	Config string `json:"config"`
	// SigningKeyFile is the key every process verifies (and the cells
	// sign) tokens with, handed to each in LIVECELL_SIGNING_KEY_FILE.
	SigningKeyFile string `json:"signing_key_file"`
	// SharedDatabase is true when every process uses one database (its URL
	// is not written here: it may hold a password); false when each cell
	// keeps its players in its own embedded store.
	SharedDatabase bool `json:"shared_database"`
	// EdgeCertFile is the certificate the edges serve QUIC with
	// (self-signed by `world up`): clients of the world trust it.
	EdgeCertFile string    `json:"edge_cert_file,omitempty"`
	Processes    []Process `json:"processes"`
}

// Process is one OS process of the world.
type Process struct {
	Name  string            `json:"name"` // unique: "control", "router-1", "cell-eu-west"
	Role  Role              `json:"role"`
	Cell  string            `json:"cell,omitempty"` // for cell (and edge) processes
	PID   int               `json:"pid"`
	Addrs map[string]string `json:"addrs"` // host:port by Addr* key
	Log   string            `json:"log"`   // stdout and stderr, JSON lines
	// Args is the full argv, to restart the process; where the system does
	// not give StartTicks it also tells this process apart from an
	// unrelated one that reused its PID.
	Args []string `json:"args"`
	// StartTicks is when the process started, in clock ticks since boot
	// (Linux: field 22 of /proc/<pid>/stat): a process with the same PID
	// and another start time is not this one.
	StartTicks uint64 `json:"start_ticks,omitempty"`
}

// URL returns "http://" + the address under key, or "" when there is none.
func (p Process) URL(key string) string {
	if a := p.Addrs[key]; a != "" {
		return "http://" + a
	}
	return ""
}

// ByRole returns the processes of role, in start order.
func (s *State) ByRole(role Role) []Process {
	var out []Process
	for _, p := range s.Processes {
		if p.Role == role {
			out = append(out, p)
		}
	}
	return out
}

// CellProcesses returns the processes of cell id: its cell processes, not
// the edges listed near it, which are not part of it.
func (s *State) CellProcesses(id string) []Process {
	var out []Process
	for _, p := range s.Processes {
		if p.Role == RoleCell && p.Cell == id {
			out = append(out, p)
		}
	}
	return out
}

// RouterURLs returns the base URL of every router.
func (s *State) RouterURLs() []string {
	var out []string
	for _, p := range s.ByRole(RoleRouter) {
		out = append(out, p.URL(AddrHTTP))
	}
	return out
}

// ControlURL returns the control plane's base URL, "" when none runs.
func (s *State) ControlURL() string {
	for _, p := range s.ByRole(RoleControl) {
		return p.URL(AddrHTTP)
	}
	return ""
}

// Path returns the state file of the world in dir.
func Path(dir string) string { return filepath.Join(dir, StateFile) }

// ErrNoWorld is returned by Load when dir holds no state file.
var ErrNoWorld = errors.New("world: no world here")

// Load reads the state file in dir.
func Load(dir string) (*State, error) {
	data, err := os.ReadFile(Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s): start one with `livecell world up`", ErrNoWorld, Path(dir))
	}
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("world: %s: %w", Path(dir), err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("world: %s: version %d, this build reads %d", Path(dir), s.Version, StateVersion)
	}
	return &s, nil
}

// Save writes s to its directory atomically (readable by the owner only:
// it names the key file and every process's argv).
func Save(s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("world: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".state-*.json")
	if err != nil {
		return fmt.Errorf("world: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("world: write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("world: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), Path(s.Dir)); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	return nil
}

// Remove deletes the state file of dir; logs and keys stay for the
// post-mortem.
func Remove(dir string) error {
	if err := os.Remove(Path(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("world: %w", err)
	}
	return nil
}

// Running returns the processes of s that are still alive.
func (s *State) Running() []Process {
	var out []Process
	for _, p := range s.Processes {
		if Alive(p) {
			out = append(out, p)
		}
	}
	return out
}
