// Package background runs a component's background loop: started once,
// stopped by cancelling its context and waiting for it to return. The
// router's probes, the control plane's rebuilds and a cell's agent share
// this lifecycle.
package background

import (
	"context"
	"errors"
	"sync"
)

// ErrRunning is Start's error when the loop already runs.
var ErrRunning = errors.New("already started")

// Loop is one background goroutine. Its zero value is ready; it is safe for
// concurrent use.
type Loop struct {
	mu     sync.Mutex
	cancel context.CancelFunc // nil when not running
	done   chan struct{}      // closed when fn returns
}

// Start runs fn on its own goroutine with a context that ends when ctx
// does or at Stop. It returns ErrRunning if the loop runs already.
func (l *Loop) Start(ctx context.Context, fn func(context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return ErrRunning
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		fn(runCtx)
	}()
	return nil
}

// Running reports whether the loop was started and not stopped since.
func (l *Loop) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cancel != nil
}

// Stop cancels the loop and waits for it to return, or for ctx (whose
// error it then returns). Stopping a loop that does not run does nothing.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
