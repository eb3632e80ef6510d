// Command livecell is the single livecell binary: the local world, a cell, a
// gateway, the router and the operator tools, chosen by subcommand.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/livecell/livecell/cmd/livecell/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a graceful stop, restore the default
	// handling so a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
