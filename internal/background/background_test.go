package background

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLoopLifecycle(t *testing.T) {
	var l Loop
	if err := l.Stop(t.Context()); err != nil || l.Running() {
		t.Fatalf("Stop of a loop never started = %v, running %v; want nil, false", err, l.Running())
	}
	exited := make(chan struct{})
	if err := l.Start(t.Context(), func(ctx context.Context) { <-ctx.Done(); close(exited) }); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context(), func(context.Context) {}); !errors.Is(err, ErrRunning) || !l.Running() {
		t.Fatalf("second Start = %v, running %v; want ErrRunning, true", err, l.Running())
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	default:
		t.Fatal("Stop returned before the loop did")
	}
	// Stopped, it can run again.
	if err := l.Start(t.Context(), func(context.Context) {}); err != nil {
		t.Fatalf("Start after Stop = %v", err)
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestStopGivesUpWithItsContext(t *testing.T) {
	var l Loop
	release := make(chan struct{})
	defer close(release)
	if err := l.Start(t.Context(), func(context.Context) { <-release }); err != nil { // ignores its context
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop of a stuck loop = %v, want DeadlineExceeded", err)
	}
}

func TestLoopEndsWithStartContext(t *testing.T) {
	var l Loop
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan struct{})
	if err := l.Start(ctx, func(ctx context.Context) { <-ctx.Done(); close(exited) }); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop outlived its start context")
	}
}
