//go:build unix

package accounts_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is this process's CPU time, user plus system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the busy CPU time of the whole machine (every CPU, every
// process) from /proc/stat, or 0 where there is none: on a box shared by
// the benchmark and PostgreSQL it is what one op costs altogether.
func machineCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	// user nice system idle iowait irq softirq steal: user, nice, system,
	// irq and softirq are this machine's work (idle, iowait and the
	// hypervisor's steal are not). Units are USER_HZ ticks, 100 per second
	// on Linux.
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		if i != 3 && i != 4 && i != 7 {
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// pidsCPU is the CPU time (user plus system) the given processes have used,
// from /proc/<pid>/stat; processes that are gone count nothing.
func pidsCPU(pids []int32) time.Duration {
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces; the
		// fields after it start with the state (field 3): utime and stime
		// are fields 14 and 15.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		for _, v := range f[11:13] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
