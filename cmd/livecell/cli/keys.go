package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

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
	var (
		subject string
		scopes  []string
		ttl     time.Duration
	)
	serverToken := &cobra.Command{
		Use:   "server-token",
		Short: "Mint a server credential (audience livecell:server) for a dedicated server or service",
		Long: `Server-token signs a token with the audience livecell:server using the key in
LIVECELL_SIGNING_KEY_FILE. Only server-audience tokens pass internal and
server-only endpoints; a player token never does, and this one is refused
wherever a player token is expected. Hand it to the process through a file or
an environment variable (LIVECELL_SERVER_TOKEN), never on a command line
that others can read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			keys, err := loadKeys(log, false)
			if err != nil {
				return err
			}
			signer, err := token.NewSigner(keys, nil)
			if err != nil {
				return err
			}
			tok, exp, err := signer.IssueServer(subject, scopes, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, tok)
			fmt.Fprintf(g.stderr, "server token for %q, scopes %v, expires %s\n", subject, scopes, exp.UTC().Format(time.RFC3339))
			return nil
		},
	}
	serverToken.Flags().StringVar(&subject, "subject", "", "who holds the credential, e.g. ds/eu-west/fleet-a (required)")
	serverToken.Flags().StringSliceVar(&scopes, "scope", nil, "scopes granted (repeatable), e.g. --scope ops --scope match.results")
	serverToken.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime")
	_ = serverToken.MarkFlagRequired("subject")
	cmd.AddCommand(serverToken)
	return cmd
}
