package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/router"
)

// TestCellsValidateGolden runs `livecell cells validate` on every
// testdata/{bad,good}-*.yaml and compares exit code, stdout and stderr with
// testdata/<name>.golden. A change is a change of what operators read:
// review the diff, then rerun with -update.
func TestCellsValidateGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, f := range files {
		base := filepath.Base(f)
		if !strings.HasPrefix(base, "bad-") && !strings.HasPrefix(base, "good-") {
			continue
		}
		if strings.HasPrefix(base, "bad-") {
			bad = append(bad, f)
		}
		t.Run(base, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, "cells", "validate", f)
			got := fmt.Sprintf("$ livecell cells validate %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", f, code, stdout, stderr)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestCellsValidateGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (rerun with -update if intended):\n%s", golden, lineDiff(string(want), got))
			}
			wantCode := 0
			if strings.HasPrefix(base, "bad-") {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d", code, wantCode)
			}
		})
	}
	if len(bad) < 5 {
		t.Fatalf("found %d testdata/bad-*.yaml, want at least 5", len(bad))
	}

	// As a shell expands testdata/bad-*.yaml: every file is reported, in
	// order, and the command fails.
	t.Run("all bad files at once", func(t *testing.T) {
		_, stderr, code := runCLI(t, append([]string{"cells", "validate"}, bad...)...)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		var want strings.Builder
		for _, f := range bad {
			_, e, _ := runCLI(t, "cells", "validate", f)
			want.WriteString(e)
		}
		if stderr != want.String() {
			t.Errorf("stderr for all files is not the files' reports in order:\n%s", lineDiff(want.String(), stderr))
		}
	})
}

// TestCellsValidateEveryLineIsLocated: in the bad files, every problem
// names its file and line, so an operator (or a CI annotation) can jump to
// it.
func TestCellsValidateEveryLineIsLocated(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "bad-*.yaml"))
	for _, f := range files {
		_, stderr, _ := runCLI(t, "cells", "validate", f)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		for _, l := range lines[:len(lines)-1] { // the last is the summary
			var line int
			if _, err := fmt.Sscanf(strings.TrimPrefix(l, f+":"), "%d:", &line); err != nil || !strings.HasPrefix(l, f+":") || line < 1 {
				t.Errorf("%s: %q does not start with %s:<line>:", f, l, f)
			}
		}
	}
}

// fakeRouterCells records what followCells applies.
type fakeRouterCells struct {
	mu      sync.Mutex
	applied []*config.Cells
	watched []router.WatchConfig
}

func (f *fakeRouterCells) SetCells(c *config.Cells) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, c)
}

func (f *fakeRouterCells) WatchCellsFile(ctx context.Context, cfg router.WatchConfig) error {
	f.mu.Lock()
	f.watched = append(f.watched, cfg)
	f.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (f *fakeRouterCells) last() (*config.Cells, int, []router.WatchConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return nil, 0, append([]router.WatchConfig(nil), f.watched...)
	}
	return f.applied[len(f.applied)-1], len(f.applied), append([]router.WatchConfig(nil), f.watched...)
}

// TestCellsFollowConsul: with CONSUL_HTTP_ADDR set, the router gets the
// endpoints Consul reports healthy; with --config, the file is watched and
// its changes go through the registry.
func TestCellsFollowConsul(t *testing.T) {
	consul := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// GET /v1/health/service/:service?passing=1: one passing eu-west gateway.
		if r.URL.Query().Get("index") != "" {
			select { // a blocking query with no change: hold until the client gives up
			case <-r.Context().Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
		w.Header().Set("X-Consul-Index", "7")
		w.Header().Set("X-Consul-LastContact", "0")
		w.Header().Set("X-Consul-KnownLeader", "true")
		var out []any
		if r.URL.Path == "/v1/health/service/livecell-gateway" {
			out = append(out, map[string]any{
				"Node":    map[string]any{"Node": "n1", "Address": "10.1.1.1"},
				"Service": map[string]any{"ID": "gw1", "Service": "livecell-gateway", "Address": "10.0.0.5", "Port": 5110, "Meta": map[string]string{"cell": "eu-west"}},
				"Checks":  []any{map[string]any{"Status": "passing"}},
			})
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer consul.Close()
	t.Setenv("CONSUL_HTTP_ADDR", consul.Listener.Addr().String())

	cells, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	g := &globals{configPath: "cells.yaml"}
	f := &fakeRouterCells{}
	log, _ := (&globals{stderr: &strings.Builder{}, logLevel: "error", logFormat: "text"}).logger()
	stop, err := followCells(t.Context(), g, log, nil, f, cells)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, watched := f.last()
		if c != nil && len(watched) == 1 {
			eu, _ := c.Cell("eu-west")
			us, _ := c.Cell("us-east")
			if eu.Gateway == "10.0.0.5:5110" {
				if us.Gateway != "127.0.0.1:4120" {
					t.Errorf("us-east gateway = %s, want cells.yaml's 127.0.0.1:4120 (no instance in Consul)", us.Gateway)
				}
				if watched[0].Path != "cells.yaml" || watched[0].Apply == nil {
					t.Errorf("watch config = %+v, want cells.yaml applied through the registry", watched[0])
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router never got eu-west's gateway from Consul (last applied %+v)", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
