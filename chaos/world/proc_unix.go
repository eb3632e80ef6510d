//go:build unix

package world

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// detach puts the child in its own process group: a Ctrl-C meant for
// `livecell world up` must not reach the world it leaves running, and a
// group signal reaches anything the process itself started.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// Alive reports whether p still runs. A zombie (dead, not yet reaped) is
// not alive, and neither is a process that only shares p's PID: one whose
// start time (or, without it, argv) differs took the PID after p ended and
// is not ours to signal.
func Alive(p Process) bool {
	if p.PID <= 0 {
		return false
	}
	if err := syscall.Kill(p.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if err != nil {
		// No procfs (macOS, BSD): kill(0) is all there is to go by.
		return true
	}
	state, ticks, ok := parseStat(stat)
	if !ok {
		return true
	}
	if state == 'Z' {
		return false
	}
	if p.StartTicks != 0 {
		return ticks == p.StartTicks
	}
	if len(p.Args) == 0 {
		return true
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	// An empty cmdline is a process on its way out (or a kernel thread,
	// which ignores signals): only a different argv proves a stranger.
	return err != nil || len(cmdline) == 0 || bytes.Equal(cmdline, joinArgv(p.Args))
}

// startTicks returns when pid started, in clock ticks since boot, or 0
// when the system does not say.
func startTicks(pid int) uint64 {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, ticks, _ := parseStat(stat)
	return ticks
}

// parseStat reads the state (field 3) and start time (field 22) of a
// /proc/<pid>/stat line. They follow the parenthesised command name, which
// may itself hold spaces and parentheses: parsing starts after the last ')'.
func parseStat(stat []byte) (state byte, ticks uint64, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 20 {
		return 0, 0, false
	}
	ticks, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil || len(fields[0]) != 1 {
		return 0, 0, false
	}
	return fields[0][0], ticks, true
}

func joinArgv(args []string) []byte {
	var b bytes.Buffer
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// signal sends sig to p's process group (p leads it: detach made it so),
// after checking that p is still the process we started.
func signal(p Process, sig syscall.Signal) error {
	if !Alive(p) {
		return nil
	}
	target := p.PID
	if pgid, err := syscall.Getpgid(p.PID); err == nil && pgid == p.PID {
		target = -p.PID
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("world: signal %s (pid %d): %w", p.Name, p.PID, err)
	}
	return nil
}

// killChild SIGKILLs the group of a child this program started and has not
// reaped yet.
func killChild(p Process) error {
	if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("world: kill %s (pid %d): %w", p.Name, p.PID, err)
	}
	return nil
}

// Kill ends p at once with SIGKILL, as a machine dies: no drain, no
// goodbye, sockets reset by the kernel.
func Kill(p Process) error { return signal(p, syscall.SIGKILL) }

// Terminate asks p to stop with SIGTERM: cells drain their gateways.
func Terminate(p Process) error { return signal(p, syscall.SIGTERM) }
