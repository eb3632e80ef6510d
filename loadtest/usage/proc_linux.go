package usage

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// readProc reads /proc/<pid>/stat.
func readProc(pid int) (Reading, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return Reading{}, fmt.Errorf("usage: pid %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return Reading{}, fmt.Errorf("usage: pid %d: %w", pid, err)
	}
	return Reading{CPUSeconds: st.CPUTime(), RSSBytes: int64(st.ResidentMemory())}, nil
}
