//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package gateway

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort sets SO_REUSEPORT before bind, so several gateway processes can
// listen on one port and the kernel spreads new connections across them.
func reusePort(network, address string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return fmt.Errorf("gateway: reuseport %s: %w", address, err)
	}
	if serr != nil {
		return fmt.Errorf("gateway: setsockopt SO_REUSEPORT %s: %w", address, serr)
	}
	return nil
}
