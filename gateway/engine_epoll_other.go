//go:build !linux

package gateway

import (
	"errors"
	"net"
	"time"
)

// epollAvailable reports whether this platform has the epoll engine.
const epollAvailable = false

type pollEngine struct{}

func (g *Gateway) now() time.Duration { return time.Since(g.epoch) }

func (g *Gateway) startEpoll(net.Listener, int) error {
	return errors.New("gateway: the epoll engine runs on Linux only")
}

func (*pollEngine) stop() {}
