//go:build !linux

package usage

import "errors"

// readProc needs /proc: elsewhere, sample the process's /metrics instead.
func readProc(pid int) (Reading, error) {
	return Reading{}, errors.New("usage: /proc sampling needs Linux; give the process's /metrics URL instead")
}
