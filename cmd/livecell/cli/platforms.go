package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts/platform/epic"
	"github.com/livecell/livecell/cell/accounts/platform/steam"
)

// Platform sign-in is configured from the environment only: the Steam
// publisher key is a secret, and the rest travels with it. A platform whose
// variables are unset is off on this cell.
const (
	envSteamAppID       = "LIVECELL_STEAM_APP_ID"
	envSteamKey         = "LIVECELL_STEAM_PUBLISHER_KEY"
	envSteamKeyFile     = "LIVECELL_STEAM_PUBLISHER_KEY_FILE"
	envSteamAPI         = "LIVECELL_STEAM_API_URL"
	envSteamIdentity    = "LIVECELL_STEAM_IDENTITY"
	envEpicClientID     = "LIVECELL_EPIC_CLIENT_ID"
	envEpicJWKS         = "LIVECELL_EPIC_JWKS_URL"
	envEpicIssuer       = "LIVECELL_EPIC_ISSUER"
	envEpicDeploymentID = "LIVECELL_EPIC_DEPLOYMENT_ID"
)

// platformHelp is appended to the --help of commands that run accounts.
const platformHelp = `
Platform sign-in (environment only; a platform is off unless configured):
  LIVECELL_STEAM_APP_ID, LIVECELL_STEAM_PUBLISHER_KEY_FILE (or _KEY),
  LIVECELL_STEAM_API_URL, LIVECELL_STEAM_IDENTITY            Steam tickets
  LIVECELL_EPIC_CLIENT_ID, LIVECELL_EPIC_JWKS_URL,
  LIVECELL_EPIC_ISSUER, LIVECELL_EPIC_DEPLOYMENT_ID          Epic ID tokens`

// platformVerifiers builds the Steam and Epic verifiers the environment
// configures and sets them on deps.
func platformVerifiers(ctx context.Context, log *slog.Logger, deps *cell.Deps) error {
	if app := os.Getenv(envSteamAppID); app != "" {
		id, err := strconv.ParseUint(app, 10, 32)
		if err != nil {
			return fmt.Errorf("%s %q: want a Steam app id", envSteamAppID, app)
		}
		key, err := secret(envSteamKey, envSteamKeyFile)
		if err != nil {
			return err
		}
		v, err := steam.New(steam.Config{
			BaseURL: os.Getenv(envSteamAPI), AppID: uint32(id), PublisherKey: key, Identity: os.Getenv(envSteamIdentity),
		})
		if err != nil {
			return err
		}
		deps.Steam = v
		log.Info("steam sign-in on", "app_id", id)
	}
	if client := os.Getenv(envEpicClientID); client != "" {
		v, err := epic.New(ctx, epic.Config{
			ClientID: client, JWKSURL: os.Getenv(envEpicJWKS), Issuer: os.Getenv(envEpicIssuer), DeploymentID: os.Getenv(envEpicDeploymentID),
		}, nil, nil)
		if err != nil {
			return err
		}
		// The verifier starts even while Epic's keys cannot be fetched (Epic
		// logins answer unavailable until they can); say so at start-up.
		if err := v.Refresh(ctx); err != nil {
			log.Warn("epic sign-in: key set not fetched yet", "error", err)
		}
		deps.Epic = v
		log.Info("epic sign-in on", "client_id", client)
	}
	return nil
}

// secret reads a secret from a file named by fileEnv, or from env itself.
func secret(env, fileEnv string) (string, error) {
	if path := os.Getenv(fileEnv); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileEnv, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("set %s (a file) or %s", fileEnv, env)
}
