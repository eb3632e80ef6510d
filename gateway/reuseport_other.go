//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package gateway

import (
	"fmt"
	"runtime"
	"syscall"
)

func reusePort(network, address string, rc syscall.RawConn) error {
	return fmt.Errorf("gateway: SO_REUSEPORT is not supported on %s", runtime.GOOS)
}
