package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/internal/buildinfo"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, buildinfo.Get().String())
			return nil
		},
	}
}
