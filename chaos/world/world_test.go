//go:build unix

package world_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/chaos/world"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := world.Load(dir); !errors.Is(err, world.ErrNoWorld) {
		t.Fatalf("Load of an empty dir: got %v, want ErrNoWorld", err)
	}
	want := &world.State{
		Version: world.StateVersion, Dir: dir, StartedAt: time.Unix(1_700_000_000, 0).UTC(), Binary: "/bin/livecell",
		Config: dir + "/cells.yaml", SigningKeyFile: dir + "/signing-key.pem",
		Processes: []world.Process{
			{Name: "control", Role: world.RoleControl, PID: 10, Addrs: map[string]string{world.AddrHTTP: "127.0.0.1:4101"}, Log: dir + "/control.log", Args: []string{"/bin/livecell", "control"}},
			{Name: "router-1", Role: world.RoleRouter, PID: 11, Addrs: map[string]string{world.AddrHTTP: "127.0.0.1:4100"}},
			{Name: "router-2", Role: world.RoleRouter, PID: 12, Addrs: map[string]string{world.AddrHTTP: "127.0.0.1:4102"}},
			{Name: "cell-eu-west", Role: world.RoleCell, Cell: "eu-west", PID: 13, Addrs: map[string]string{world.AddrAPI: "127.0.0.1:4111", world.AddrGateway: "127.0.0.1:4110"}},
		},
	}
	if err := world.Save(want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(world.Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := world.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load after Save:\ngot  %+v\nwant %+v", got, want)
	}
	if urls := got.RouterURLs(); !reflect.DeepEqual(urls, []string{"http://127.0.0.1:4100", "http://127.0.0.1:4102"}) {
		t.Errorf("RouterURLs: got %v", urls)
	}
	if u := got.ControlURL(); u != "http://127.0.0.1:4101" {
		t.Errorf("ControlURL: got %q", u)
	}
	if ps := got.CellProcesses("eu-west"); len(ps) != 1 || ps[0].PID != 13 {
		t.Errorf("CellProcesses(eu-west): got %+v, want the one with pid 13", ps)
	}

	future := *want
	future.Version = world.StateVersion + 1
	if err := world.Save(&future); err != nil {
		t.Fatal(err)
	}
	if _, err := world.Load(dir); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("Load of a newer format: got %v, want a version error", err)
	}
	if err := world.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := world.Remove(dir); err != nil {
		t.Fatalf("Remove twice: %v, want nil", err)
	}
}

func TestAliveRecognisesOnlyItsProcess(t *testing.T) {
	me := world.Process{PID: os.Getpid(), Args: os.Args}
	if !world.Alive(me) {
		t.Fatalf("Alive(this process with its own argv) = false, want true")
	}
	// Same PID, another argv or start time: a PID reused by a stranger is
	// not ours.
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if world.Alive(world.Process{PID: os.Getpid(), Args: []string{"/usr/bin/something-else"}}) {
			t.Errorf("Alive with a foreign argv = true, want false")
		}
		if world.Alive(world.Process{PID: os.Getpid(), Args: os.Args, StartTicks: 1}) {
			t.Errorf("Alive with a foreign start time = true, want false")
		}
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	if world.Alive(world.Process{PID: cmd.Process.Pid}) {
		t.Errorf("Alive(a reaped process) = true, want false")
	}
	if world.Alive(world.Process{}) {
		t.Errorf("Alive(pid 0) = true, want false")
	}
}

// shLauncher runs sh scripts as the world's processes. The scripts never
// exec: Alive recognises a process by the argv it was started with.
func shLauncher(t *testing.T) *world.Launcher {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	return &world.Launcher{Dir: t.TempDir(), Binary: sh, Timeout: 10 * time.Second}
}

func TestLauncherReportsEarlyExitWithItsLog(t *testing.T) {
	l := shLauncher(t)
	err := l.Start(context.Background(), world.Spec{
		Name: "doomed", Role: world.RoleCell, Args: []string{"-c", "echo listen: address already in use >&2; exit 3"},
		Ready: func(context.Context) error { return errors.New("not yet") },
	})
	if err == nil {
		t.Fatal("Start of a process that exits: got nil, want an error")
	}
	for _, want := range []string{"doomed", "exited during start-up", "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLauncherWaitsForReadyAndStopEscalates(t *testing.T) {
	l := shLauncher(t)
	t.Cleanup(func() { _ = l.Abort() })
	ready := time.Now().Add(200 * time.Millisecond)
	err := l.Start(context.Background(),
		world.Spec{Name: "polite", Role: world.RoleRouter, Args: []string{"-c", "sleep 60; true"},
			Ready: func(context.Context) error {
				if time.Now().Before(ready) {
					return errors.New("warming up")
				}
				return nil
			}},
		// Ignores SIGTERM (and so does its sleep, which inherits that).
		world.Spec{Name: "stubborn", Role: world.RoleCell, Args: []string{"-c", "trap '' TERM; sleep 60"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(ready) {
		t.Fatalf("Start returned before the process reported ready")
	}
	procs := l.Processes()
	if len(procs) != 2 {
		t.Fatalf("Processes: got %d, want 2", len(procs))
	}
	for _, p := range procs {
		if !world.Alive(p) {
			t.Fatalf("%s is not alive after Start", p.Name)
		}
	}
	killed, err := world.Stop(context.Background(), procs, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(killed, []string{"stubborn"}) {
		t.Errorf("SIGKILLed: got %v, want [stubborn]", killed)
	}
	for _, p := range procs {
		if world.Alive(p) {
			t.Errorf("%s still alive after Stop", p.Name)
		}
	}
}

func TestLauncherTimesOut(t *testing.T) {
	l := shLauncher(t)
	l.Timeout = 300 * time.Millisecond
	t.Cleanup(func() { _ = l.Abort() })
	err := l.Start(context.Background(), world.Spec{Name: "never", Role: world.RoleControl, Args: []string{"-c", "echo starting; sleep 60; true"},
		Ready: func(context.Context) error { return errors.New("port closed") }})
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "port closed") || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("Start of a process never ready: got %v, want 'not ready', the last check and the log", err)
	}
	if err := l.Abort(); err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Processes() {
		if world.Alive(p) {
			t.Errorf("%s alive after Abort", p.Name)
		}
	}
}
