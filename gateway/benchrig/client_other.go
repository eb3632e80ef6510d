//go:build !linux

package benchrig

import (
	"context"
	"errors"
	"io"
)

// ClientConfig is one load-generating process of the rig.
type ClientConfig struct {
	Target      string
	Source      string
	Sessions    int
	FirstPlayer int
	KeyFile     string
}

// RunClient needs epoll: the rig's load generator runs on Linux only.
func RunClient(context.Context, ClientConfig, io.Reader, io.Writer) error {
	return errors.New("benchrig: the load generator runs on Linux only")
}

func (c ClientConfig) args() []string { return nil }
