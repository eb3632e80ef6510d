package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts/platform/steam/steamtest"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
)

// TestDevWorldSteamSignIn configures Steam from the environment, as an
// operator would, against a local server speaking Steam's Web API format.
func TestDevWorldSteamSignIn(t *testing.T) {
	srv := steamtest.NewServer(480, "publisher-secret")
	defer srv.Close()
	srv.AddTicket("0a0b0c0d", steamtest.SteamID(1))
	keyFile := filepath.Join(t.TempDir(), "steam.key")
	if err := os.WriteFile(keyFile, []byte("publisher-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envSteamAppID, "480")
	t.Setenv(envSteamKeyFile, keyFile)
	t.Setenv(envSteamAPI, srv.URL())

	w := startTestWorld(t, "")
	eu, _ := w.cfg.Cell("eu-west")
	client := accountsapi.Client{BaseURL: "http://" + eu.API, HTTP: http.DefaultClient}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first, err := client.SteamLogin(ctx, "0a0b0c0d")
	if err != nil {
		t.Fatalf("first steam login: %v", err)
	}
	if !first.NewAccount || first.HomeCell != "eu-west" || first.RefreshToken == "" {
		t.Fatalf("first steam login = %+v, want a new eu-west account with a refresh token", first)
	}
	again, err := client.SteamLogin(ctx, "0a0b0c0d")
	if err != nil || again.PlayerID != first.PlayerID || again.NewAccount {
		t.Fatalf("second steam login = %+v, %v; want the same player %s", again, err, first.PlayerID)
	}
	if _, err := client.SteamLogin(ctx, "ffff"); apierr.CodeOf(err) != apierr.InvalidCredentials {
		t.Fatalf("unknown ticket: %v, want invalid_credentials", err)
	}
	if _, err := client.EpicLogin(ctx, "x.y.z"); apierr.CodeOf(err) != apierr.PermissionDenied {
		t.Fatalf("epic while unconfigured: %v, want permission_denied", err)
	}
}

func TestPlatformConfigErrors(t *testing.T) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad app id", map[string]string{envSteamAppID: "steam"}, "want a Steam app id"},
		{"no key", map[string]string{envSteamAppID: "480"}, envSteamKeyFile},
		{"missing key file", map[string]string{envSteamAppID: "480", envSteamKeyFile: "/nonexistent/key"}, "no such file"},
		{"bad api url", map[string]string{envSteamAppID: "480", envSteamKey: "k", envSteamAPI: "ftp://x"}, "BaseURL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var deps cell.Deps
			err := platformVerifiers(context.Background(), log, &deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("platformVerifiers error = %v, want one containing %q", err, tt.want)
			}
			if deps.Steam != nil {
				t.Fatalf("a misconfigured platform was enabled")
			}
		})
	}
}

// TestKeysGenerateAndServerToken: a key from `keys generate` signs server
// credentials that verify with the server audience only.
func TestKeysGenerateAndServerToken(t *testing.T) {
	var pem, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"keys", "generate"}, &pem, &errOut); code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut.String())
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIVECELL_SIGNING_KEY_FILE", path)
	var out bytes.Buffer
	errOut.Reset()
	if code := Main(context.Background(), []string{"keys", "server-token", "--subject", "ds/eu-west/1", "--scope", "match.results"}, &out, &errOut); code != 0 {
		t.Fatalf("keys server-token: exit %d: %s", code, errOut.String())
	}
	keys, err := token.LoadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	v := token.NewVerifier(keys, nil)
	tok := strings.TrimSpace(out.String())
	c, err := v.Verify(tok, token.AudienceServer)
	if err != nil || c.Subject != "ds/eu-west/1" || !c.HasScope("match.results") {
		t.Fatalf("server token claims = %+v, %v; want subject ds/eu-west/1 with scope match.results", c, err)
	}
	if _, err := v.Verify(tok, token.AudiencePlayer); apierr.CodeOf(err) != apierr.InvalidToken {
		t.Fatalf("server token as player token: %v, want invalid_token", err)
	}
	if code := Main(context.Background(), []string{"keys", "server-token"}, &out, &errOut); code == 0 {
		t.Fatal("server-token without --subject succeeded")
	}
}
