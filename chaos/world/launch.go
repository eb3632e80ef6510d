package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// Spec is one process to start.
type Spec struct {
	Name  string
	Role  Role
	Cell  string
	Args  []string // after the binary
	Env   []string // added to the launcher's environment for this process
	Addrs map[string]string
	// Ready reports whether the process serves; Start polls it until it
	// returns nil. Nil means ready as soon as it runs.
	Ready func(ctx context.Context) error
}

// Launcher starts the processes of a world in the background. Processes
// outlive the Launcher and the program that made it: they run in their
// own process groups with their output in <Dir>/<name>.log.
type Launcher struct {
	Dir    string
	Binary string
	// Env is added to this program's environment for every process; later
	// entries win, so it overrides what the caller inherited.
	Env []string
	// Timeout bounds each Start, readiness included; 0 means 60s.
	Timeout time.Duration

	mu     sync.Mutex
	procs  []Process
	exited map[string]chan struct{} // closed once the process is reaped
}

// Start starts specs together and waits until every one is ready. When one
// exits or is not ready in time, the error quotes the end of its log; the
// caller decides whether to Abort what already runs.
func (l *Launcher) Start(ctx context.Context, specs ...Spec) error {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	started := make([]Process, 0, len(specs))
	for _, s := range specs {
		p, err := l.start(s)
		if err != nil {
			return err
		}
		started = append(started, p)
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() { errs[i] = l.waitReady(ctx, started[i], s.Ready) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Launcher) start(s Spec) (Process, error) {
	logPath := filepath.Join(l.Dir, s.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return Process{}, fmt.Errorf("world: %s: %w", s.Name, err)
	}
	// The child holds its own descriptor for the log; ours can go.
	defer logf.Close()
	cmd := exec.Command(l.Binary, s.Args...)
	cmd.Env = append(append(os.Environ(), l.Env...), s.Env...)
	cmd.Dir = l.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("world: start %s: %w", s.Name, err)
	}
	// Read before anything reaps the child, so the PID is still its own.
	p := Process{Name: s.Name, Role: s.Role, Cell: s.Cell, PID: cmd.Process.Pid, Addrs: s.Addrs, Log: logPath, Args: cmd.Args,
		StartTicks: startTicks(cmd.Process.Pid)}
	done := make(chan struct{})
	// Reap the child when it ends, so a long-lived caller (a test) does
	// not collect zombies; a CLI caller exits long before and init reaps.
	go func() { _ = cmd.Wait(); close(done) }()
	l.mu.Lock()
	if l.exited == nil {
		l.exited = map[string]chan struct{}{}
	}
	l.procs = append(l.procs, p)
	l.exited[p.Name] = done
	l.mu.Unlock()
	return p, nil
}

func (l *Launcher) waitReady(ctx context.Context, p Process, ready func(context.Context) error) error {
	l.mu.Lock()
	exited := l.exited[p.Name]
	l.mu.Unlock()
	const poll = 50 * time.Millisecond
	t := time.NewTicker(poll)
	defer t.Stop()
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("world: %s (pid %d) exited during start-up; end of %s:\n%s", p.Name, p.PID, p.Log, Tail(p.Log, 15))
		default:
		}
		if ready == nil {
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		last = ready(rctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("world: %s (pid %d) not ready: %w (last check: %v); end of %s:\n%s", p.Name, p.PID, ctx.Err(), last, p.Log, Tail(p.Log, 15))
		case <-exited:
		case <-t.C:
		}
	}
}

// Processes returns what the launcher started, in start order.
func (l *Launcher) Processes() []Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Process(nil), l.procs...)
}

// Abort kills everything the launcher started and waits until it is gone.
// It needs no argv check: a child not yet reaped keeps its PID, so the PID
// cannot belong to anyone else.
func (l *Launcher) Abort() error {
	l.mu.Lock()
	procs := append([]Process(nil), l.procs...)
	exited := make([]chan struct{}, len(procs))
	for i, p := range procs {
		exited[i] = l.exited[p.Name]
	}
	l.mu.Unlock()
	var errs []error
	for i, p := range procs {
		select {
		case <-exited[i]:
		default:
			errs = append(errs, killChild(p))
		}
	}
	deadline := time.After(10 * time.Second)
	for i, p := range procs {
		select {
		case <-exited[i]:
		case <-deadline:
			return errors.Join(append(errs, fmt.Errorf("world: abort: %s (pid %d) still runs after 10s", p.Name, p.PID))...)
		}
	}
	return errors.Join(errs...)
}

// Stop asks every process to stop (SIGTERM: cells drain), gives them grace
// to do so, then SIGKILLs what is left and waits until everything is gone.
// It returns the names of the processes it had to kill.
func Stop(ctx context.Context, procs []Process, grace time.Duration) ([]string, error) {
	var errs []error
	for _, p := range procs {
		errs = append(errs, Terminate(p))
	}
	waitDead(ctx, procs, grace)
	var killed []string
	for _, p := range procs {
		if Alive(p) {
			killed = append(killed, p.Name)
			errs = append(errs, Kill(p))
		}
	}
	if len(killed) > 0 {
		waitDead(ctx, procs, 10*time.Second)
	}
	for _, p := range procs {
		if Alive(p) {
			errs = append(errs, fmt.Errorf("world: %s (pid %d) survived SIGKILL", p.Name, p.PID))
		}
	}
	return killed, errors.Join(errs...)
}

// WaitDead waits until none of procs is alive, for at most max.
func WaitDead(ctx context.Context, procs []Process, max time.Duration) bool {
	return waitDead(ctx, procs, max)
}

func waitDead(ctx context.Context, procs []Process, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for {
		alive := false
		for _, p := range procs {
			if Alive(p) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback address that was free a moment ago. Another
// program could take it before the world binds it; on a developer's machine
// or a CI runner that window is too short to matter, and a process that
// loses the race fails its start-up loudly.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("world: free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("world: free port: %w", err)
	}
	return addr, nil
}

// FreeUDPPort returns a loopback UDP address that was free a moment ago,
// for QUIC listeners; the same caveat as FreePort applies.
func FreeUDPPort() (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("world: free udp port: %w", err)
	}
	addr := pc.LocalAddr().String()
	if err := pc.Close(); err != nil {
		return "", fmt.Errorf("world: free udp port: %w", err)
	}
	return addr, nil
}

// Tail returns the last n lines of the file at path, for error messages.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
