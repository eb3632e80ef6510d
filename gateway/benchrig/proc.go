package benchrig

import (
	"fmt"
	"os"

	"github.com/prometheus/procfs"
)

// procRSS is a process's resident set in bytes.
func procRSS(pid int) (int64, error) {
	st, err := procStat(pid)
	return int64(st.ResidentMemory()), err
}

// procCPU is a process's user and system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	st, err := procStat(pid)
	return st.CPUTime(), err
}

func procStat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, fmt.Errorf("benchrig: pid %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return procfs.ProcStat{}, fmt.Errorf("benchrig: pid %d: %w", pid, err)
	}
	return st, nil
}

// sockstat is the kernel's TCP socket accounting: sockets in use, and the
// memory of their buffers.
type sockstat struct {
	inuse    int64
	memBytes int64
}

func readSockstat() (sockstat, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return sockstat{}, err
	}
	ns, err := fs.NetSockstat()
	if err != nil {
		return sockstat{}, err
	}
	for _, p := range ns.Protocols {
		if p.Protocol != "TCP" {
			continue
		}
		s := sockstat{inuse: int64(p.InUse)}
		if p.Mem != nil { // in pages
			s.memBytes = int64(*p.Mem) * int64(os.Getpagesize())
		}
		return s, nil
	}
	return sockstat{}, fmt.Errorf("benchrig: no TCP line in /proc/net/sockstat")
}

// slabCaches hold what a TCP connection costs the kernel beyond its
// buffers: the socket, its inode, file and dentry, its epoll entry.
var slabCaches = map[string]bool{"TCP": true, "sock_inode_cache": true, "filp": true, "eventpoll_epi": true,
	"dentry": true, "request_sock_TCP": true, "tw_sock_TCP": true, "skbuff_head_cache": true}

// slabBytes sums slabCaches (from /proc/slabinfo, readable by root). It
// returns -1 when slabinfo cannot be read.
func slabBytes() int64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return -1
	}
	info, err := fs.SlabInfo()
	if err != nil {
		return -1
	}
	var total int64
	for _, s := range info.Slabs {
		if slabCaches[s.Name] {
			total += s.ObjNum * s.ObjSize
		}
	}
	return total
}
