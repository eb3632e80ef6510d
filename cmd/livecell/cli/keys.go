package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/internal/token"
)

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage token signing keys",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "Print a new Ed25519 signing key (PEM) for LIVECELL_SIGNING_KEY_FILE",
		Long: `Generate prints a new PKCS#8 Ed25519 private key. Put it in a file readable
only by the accounts service and point LIVECELL_SIGNING_KEY_FILE at it. To
rotate, put the new key first in the file and keep the old one after it:
tokens signed by the old key keep verifying until they expire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			pem, err := token.EncodePrivateKeyPEM(priv)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(g.stdout, string(pem))
			return err
		},
	})
	return cmd
}
