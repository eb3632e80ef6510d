package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/chaos"
	mpworld "github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/probe"
	"github.com/livecell/livecell/router"
)

// startMultiWorld runs `livecell world up` with this test binary as the
// livecell binary, and stops every process it started when the test ends,
// whatever happened.
func startMultiWorld(t *testing.T, extra ...string) *mpworld.State {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the multi-process world")
	}
	t.Setenv(asMainEnv, "1")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Cleanup(func() { stopWorldIn(t, dir) })
	args := append([]string{"world", "up", "--dir", dir, "--binary", bin, "--free-ports", "--log-level", "warn", "--json"}, extra...)
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("world up: exit %d, want 0\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var st mpworld.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("world up --json printed %q: %v", out, err)
	}
	return &st
}

// stopWorldIn kills whatever a world in dir still runs.
func stopWorldIn(t *testing.T, dir string) {
	st, err := mpworld.Load(dir)
	if errors.Is(err, mpworld.ErrNoWorld) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if _, err := mpworld.Stop(context.Background(), st.Processes, 5*time.Second); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func TestWorldUpStatusDown(t *testing.T) {
	st := startMultiWorld(t, "--routers", "2")

	roles := map[mpworld.Role]int{}
	for _, p := range st.Processes {
		roles[p.Role]++
		if !mpworld.Alive(p) {
			t.Errorf("%s (pid %d) is not running after world up", p.Name, p.PID)
		}
		if len(p.Addrs) == 0 || p.Log == "" {
			t.Errorf("%s: got addrs %v log %q, want both", p.Name, p.Addrs, p.Log)
		}
	}
	if want := map[mpworld.Role]int{mpworld.RoleControl: 1, mpworld.RoleRouter: 2, mpworld.RoleCell: 2, mpworld.RoleEdge: 1}; fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("processes by role: got %v, want %v", roles, want)
	}
	for _, f := range []string{mpworld.Path(st.Dir), st.SigningKeyFile, st.EdgeCertFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	// Both routers answer, with the same view: side by side, stateless.
	for _, u := range st.RouterURLs() {
		var cr router.CellsResponse
		if err := getJSON(context.Background(), &http.Client{Timeout: 5 * time.Second}, u+"/v1/cells", &cr); err != nil {
			t.Fatalf("router %s: %v", u, err)
		}
		for _, c := range cr.Cells {
			if !c.Up {
				t.Errorf("router %s sees %s down: %s", u, c.ID, c.LastError)
			}
		}
	}

	_, errOut, code := runCLI(t, "world", "up", "--dir", st.Dir, "--free-ports")
	if code != 1 || !strings.Contains(errOut, "a world already runs") {
		t.Fatalf("second world up: exit %d, stderr %q; want 1 and 'a world already runs'", code, errOut)
	}

	out, _, code := runCLI(t, "world", "status", "--dir", st.Dir)
	if code != 0 || strings.Count(out, "running") != 6 {
		t.Fatalf("world status: exit %d, want 0 with 6 running processes:\n%s", code, out)
	}

	out, errOut, code = runCLI(t, "world", "down", "--dir", st.Dir, "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "6 of 6 processes were running") {
		t.Fatalf("world down: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if strings.Contains(out, "SIGKILL") {
		t.Errorf("world down had to SIGKILL: %s", out)
	}
	for _, p := range st.Processes {
		if mpworld.Alive(p) {
			t.Errorf("%s (pid %d) still runs after world down", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(mpworld.Path(st.Dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file after world down: %v, want it removed", err)
	}
	if out, _, code := runCLI(t, "world", "down", "--dir", st.Dir); code != 0 || !strings.Contains(out, "no world runs") {
		t.Errorf("world down with nothing running: exit %d, %q; want 0 and 'no world runs'", code, out)
	}
}

// TestWorldChaosKillCellFailover is the failover drill as a test: players
// on both cells, straight to the gateways and through the edge over TCP,
// QUIC and WebSocket, one cell SIGKILLed, every affected player back on the
// failover cell within the bound (edge players without their connection
// ever closing), no other player disturbed, every resolve answered; then
// the control plane is killed too and the routers keep answering known
// players from their cache.
func TestWorldChaosKillCellFailover(t *testing.T) {
	// A short home-cache TTL, so that the control-plane leg below exercises
	// stale answers rather than fresh ones.
	st := startMultiWorld(t, "--routers", "2", "--home-cache-ttl", "200ms")

	const bound = 10 * time.Second
	out, errOut, code := runCLI(t, "chaos", "kill-cell", "eu-west", "--dir", st.Dir, "--players", "6", "--edge-players", "6", "--bound", bound.String(), "--json", "--log-level", "warn")
	var rep chaos.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("chaos kill-cell: exit %d, output %q (%v), stderr %s", code, out, err, errOut)
	}
	t.Logf("time to recover: p50 %.0f ms, p99 %.0f ms, max %.0f ms (n=%d); time to detect p50 %.0f ms; %d resolves, %d failed",
		rep.TimeToRecover.P50MS, rep.TimeToRecover.P99MS, rep.TimeToRecover.MaxMS, rep.TimeToRecover.N, rep.TimeToDetect.P50MS, rep.Resolves, rep.ResolveFailures)
	if code != 0 || !rep.Pass {
		t.Fatalf("chaos kill-cell: exit %d pass=%v, want 0 and pass; failures: %v\nstderr: %s", code, rep.Pass, rep.Failures, errOut)
	}
	if rep.Affected != 3 || rep.Recovered != 3 || rep.Unaffected != 3 {
		t.Errorf("players: got %d affected, %d recovered, %d unaffected; want 3, 3, 3", rep.Affected, rep.Recovered, rep.Unaffected)
	}
	if rep.UnaffectedDisconnects != 0 {
		t.Errorf("unaffected disconnects: got %d, want 0", rep.UnaffectedDisconnects)
	}
	t.Logf("edge players: time to recover p50 %.0f ms, p99 %.0f ms, max %.0f ms (n=%d); %d requests interrupted",
		rep.EdgeTimeToRecover.P50MS, rep.EdgeTimeToRecover.P99MS, rep.EdgeTimeToRecover.MaxMS, rep.EdgeTimeToRecover.N, rep.EdgeInterrupted)
	if rep.EdgePlayers != 6 || rep.EdgeAffected != 3 || rep.EdgeRecovered != 3 || rep.EdgeDisconnects != 0 {
		t.Errorf("edge players: got %d, %d affected, %d recovered, %d connections closed; want 6, 3, 3, 0",
			rep.EdgePlayers, rep.EdgeAffected, rep.EdgeRecovered, rep.EdgeDisconnects)
	}
	if fmt.Sprint(rep.EdgeTransports) != "map[quic:1 tcp:1 ws:1]" {
		t.Errorf("affected edge players by transport: got %v, want one each over tcp, quic and ws", rep.EdgeTransports)
	}
	if rep.EdgeTimeToRecover.MaxMS > float64(bound.Milliseconds()) {
		t.Errorf("slowest edge recovery %.0f ms, bound %s", rep.EdgeTimeToRecover.MaxMS, bound)
	}
	if rep.ResolveFailures != 0 || rep.Resolves == 0 {
		t.Errorf("resolves: got %d failed of %d, want 0 failed of more than 0", rep.ResolveFailures, rep.Resolves)
	}
	if rep.TimeToRecover.MaxMS > float64(bound.Milliseconds()) {
		t.Errorf("slowest recovery %.0f ms, bound %s", rep.TimeToRecover.MaxMS, bound)
	}
	for _, b := range rep.Bots {
		want := string(router.PlacementFailover)
		if b.Transport != "" {
			want = "edge:failover" // moved by the edge, not by the router
		}
		if b.Affected && (b.RecoveredCell != "us-east" || b.Placement != want) {
			t.Errorf("player %s (%s): recovered on %q by %q, want us-east by %q", b.Player, b.Transport, b.RecoveredCell, b.Placement, want)
		}
		if b.Transport != "" && b.DisconnectedMS != nil {
			t.Errorf("edge player %s (%s): its connection closed at %.0f ms", b.Player, b.Transport, *b.DisconnectedMS)
		}
	}
	if victim := st.CellProcesses("eu-west"); len(victim) != 1 || mpworld.Alive(victim[0]) {
		t.Errorf("eu-west processes after the drill: %+v, want one, dead", victim)
	}
	if out, _, code := runCLI(t, "world", "status", "--dir", st.Dir); code != 1 || !strings.Contains(out, "DEAD") {
		t.Errorf("world status after the drill: exit %d, want 1 naming the DEAD cell:\n%s", code, out)
	}

	// Routers probe on their own schedules, and the drill ends as soon as
	// the players are back, which one router failing the cell over is
	// enough for. Before the next leg every router must have done so.
	hc := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, 5*time.Second, func() error {
		for _, u := range st.RouterURLs() {
			var cr router.CellsResponse
			if err := getJSON(context.Background(), hc, u+"/v1/cells", &cr); err != nil {
				return err
			}
			for _, c := range cr.Cells {
				if c.ID == "eu-west" && c.Up {
					return fmt.Errorf("router %s still sees eu-west up", u)
				}
			}
		}
		return nil
	})

	// The control plane dies too. Routers keep answering every player they
	// have seen, for well past their cache TTL.
	for _, p := range st.ByRole(mpworld.RoleControl) {
		if err := mpworld.Kill(p); err != nil {
			t.Fatal(err)
		}
		if !mpworld.WaitDead(context.Background(), []mpworld.Process{p}, 5*time.Second) {
			t.Fatalf("control plane (pid %d) survived SIGKILL", p.PID)
		}
	}
	window := time.Now().Add(time.Second) // five TTLs
	for rounds := 0; rounds < 2 || time.Now().Before(window); rounds++ {
		for _, u := range st.RouterURLs() {
			for _, b := range rep.Bots {
				var res router.Resolution
				if err := getJSON(context.Background(), hc, u+"/v1/resolve?player="+b.Player, &res); err != nil {
					t.Fatalf("router %s, control plane down: resolve %s: %v", u, b.Player, err)
				}
				if want := map[bool]string{true: "us-east", false: b.Home}[b.Affected]; res.HomeCell != want {
					t.Fatalf("router %s, control plane down: %s resolved to %s, want %s", u, b.Player, res.HomeCell, want)
				}
			}
		}
	}
}

// TestWorldPlayersDB runs the world on one shared PostgreSQL: a player
// registered at a cell is stored there, and homed there through the control
// plane, whose directory is the same database.
func TestWorldPlayersDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the multi-process world")
	}
	pool := dbtest.Pool(t)
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
	u.RawQuery = q.Encode()
	st := startMultiWorld(t, "--players-db", u.String())
	if !st.SharedDatabase {
		t.Errorf("state: shared_database false, want true")
	}
	if b, _ := os.ReadFile(mpworld.Path(st.Dir)); bytes.Contains(b, []byte(u.String())) {
		t.Errorf("the state file holds the database URL, which may carry a password")
	}

	out, errOut, code := runCLI(t, "probe", "--json", "--router", st.RouterURLs()[0], "--region-hint", "us-east")
	var res probe.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK {
		t.Fatalf("probe: exit %d, %s (%v), stderr %s", code, out, err, errOut)
	}
	var cell string
	if err := pool.QueryRow(context.Background(), "SELECT cell_id FROM player_homes WHERE player_id = $1", res.Player).Scan(&cell); err != nil || cell != "us-east" {
		t.Fatalf("player_homes for the probe's player: got %q, %v; want us-east", cell, err)
	}
	var players int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM players").Scan(&players); err != nil || players != 1 {
		t.Fatalf("players in PostgreSQL: got %d, %v; want 1", players, err)
	}
}

func TestWorldUpFailsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMainEnv, "1")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// eu-west's API port is taken: its process cannot start, and world up
	// must say why and leave nothing running.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := func() string {
		a, err := mpworld.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "in.yaml")
	yaml := fmt.Sprintf(`version: 1
router: {listen: %q}
cells:
  - {id: eu-west, region: europe-west1, gateway: %q, api: %q, capacity: 10, failover: [us-east]}
  - {id: us-east, region: us-east1, gateway: %q, api: %q, capacity: 10, failover: [eu-west]}
`, addr(), addr(), taken.Addr().String(), addr(), addr())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	control := addr()
	wdir := filepath.Join(dir, "world")
	t.Cleanup(func() { stopWorldIn(t, wdir) })
	_, errOut, code := runCLI(t, "--config", cfg, "world", "up", "--dir", wdir, "--binary", bin, "--control-listen", control, "--timeout", "20s")
	if code != 1 {
		t.Fatalf("world up with a taken port: exit %d, want 1", code)
	}
	for _, want := range []string{"cell-eu-west", "exited during start-up", "address already in use"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("world up error lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(mpworld.Path(wdir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file after a failed world up: %v, want none", err)
	}
	// The control plane it had started is gone again.
	if c, err := net.DialTimeout("tcp", control, time.Second); err == nil {
		c.Close()
		t.Errorf("control plane still listens on %s after the failed world up", control)
	}
}

// waitFor polls check until it succeeds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
