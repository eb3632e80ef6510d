package benchrig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// pageSize is the kernel's page size on the machines this runs on; the
// socket memory in /proc/net/sockstat is counted in pages.
const pageSize = 4096

// procRSS is a process's resident set in bytes (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("benchrig: no VmRSS for pid %d", pid)
}

// procCPU is a process's user and system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("benchrig: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("benchrig: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("benchrig: bad /proc/%d/stat times", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return float64(ut+st) / clockTicks, nil
}

// sockstat is the kernel's TCP socket accounting: sockets in use, and the
// memory of their buffers.
type sockstat struct {
	inuse    int64
	memBytes int64
}

func readSockstat() (sockstat, error) {
	f, err := os.Open("/proc/net/sockstat")
	if err != nil {
		return sockstat{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TCP:" {
			continue
		}
		var s sockstat
		for i := 1; i+1 < len(fields); i += 2 {
			v, _ := strconv.ParseInt(fields[i+1], 10, 64)
			switch fields[i] {
			case "inuse":
				s.inuse = v
			case "mem":
				s.memBytes = v * pageSize
			}
		}
		return s, nil
	}
	return sockstat{}, fmt.Errorf("benchrig: no TCP line in /proc/net/sockstat")
}

// slabBytes sums the kernel slab caches that hold TCP sockets and their
// file and epoll entries (from /proc/slabinfo, readable by root). It
// returns -1 when slabinfo cannot be read.
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return -1
	}
	caches := map[string]bool{"TCP": true, "sock_inode_cache": true, "filp": true, "eventpoll_epi": true,
		"dentry": true, "request_sock_TCP": true, "tw_sock_TCP": true, "skbuff_head_cache": true}
	var total int64
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		// name active_objs num_objs objsize ...
		if len(f) < 4 || !caches[f[0]] {
			continue
		}
		n, err1 := strconv.ParseInt(f[2], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			total += n * size
		}
	}
	return total
}
