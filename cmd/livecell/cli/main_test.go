package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// asMainEnv makes this test binary behave as the livecell binary, so that
// tests of the multi-process world can start real processes without
// building livecell first: `world up --binary <this test binary>` with the
// variable set runs the control plane, routers and cells from it.
const asMainEnv = "LIVECELL_CLI_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		// What cmd/livecell/main.go does.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		go func() { <-ctx.Done(); stop() }()
		os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
