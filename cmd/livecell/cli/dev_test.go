package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/probe"
)

// cheapArgon keeps password hashing fast in tests; production uses
// accounts.DefaultArgon2.
var cheapArgon = accounts.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

func startTestWorld(t *testing.T, database string) *world {
	t.Helper()
	cells, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	w, err := startWorld(ctx, log, cells, worldOptions{database: database, bindAny: true, argon2: &cheapArgon, drainGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("startWorld: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.stop(ctx); err != nil {
			t.Errorf("world stop: %v", err)
		}
	})
	return w
}

func TestDevWorldProbe(t *testing.T) {
	w := startTestWorld(t, "")
	checkProbes(t, w)
}

func TestDevWorldProbePostgres(t *testing.T) {
	pool := dbtest.Pool(t) // a fresh schema, dropped after the test
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	w := startTestWorld(t, u.String())
	checkProbes(t, w)

	var players int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM players").Scan(&players); err != nil {
		t.Fatalf("count players: %v", err)
	}
	if players != 3 {
		t.Fatalf("players in PostgreSQL = %d, want 3 (one per probe)", players)
	}
}

// checkProbes runs the probe three times: with a hint for each cell and
// without one, and checks each lands where it should.
func checkProbes(t *testing.T, w *world) {
	t.Helper()
	for _, tt := range []struct{ hint, wantCell string }{
		{"eu-west", "eu-west"},
		{"us-east1", "us-east"}, // a cloud region names its cell too
		{"", ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		res, err := probe.Run(ctx, probe.Options{RouterURL: w.routerURL(), RegionHint: tt.hint})
		cancel()
		if err != nil || !res.OK {
			t.Fatalf("probe hint=%q: ok=%v err=%v (%+v)", tt.hint, res.OK, err, res)
		}
		if tt.wantCell != "" && res.HomeCell != tt.wantCell {
			t.Errorf("probe hint=%q: home cell = %q, want %q", tt.hint, res.HomeCell, tt.wantCell)
		}
		if _, ok := w.cfg.Cell(res.HomeCell); !ok {
			t.Errorf("probe homed to %q, not a cell of cells.yaml", res.HomeCell)
		}
		if res.Player == "" || res.Gateway == "" {
			t.Errorf("probe result lacks player or gateway: %+v", res)
		}
	}
}

func TestDevWorldServesMetricsAndCoded404(t *testing.T) {
	w := startTestWorld(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := probe.Run(ctx, probe.Options{RouterURL: w.routerURL()}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	for _, c := range w.cfg.Cells {
		body := get(t, "http://"+c.API+"/metrics", http.StatusOK)
		for _, want := range []string{"livecell_gateway_sessions", "livecell_http_requests_total", "livecell_build_info"} {
			if !strings.Contains(body, want) {
				t.Errorf("cell %s /metrics lacks %s", c.ID, want)
			}
		}
		var e struct{ Code string }
		if err := json.Unmarshal([]byte(get(t, "http://"+c.API+"/no/such/path", http.StatusNotFound)), &e); err != nil || e.Code != "not_found" {
			t.Errorf("cell %s unknown path: code %q, err %v; want not_found", c.ID, e.Code, err)
		}
	}
	body := get(t, w.routerURL()+"/metrics", http.StatusOK)
	if !strings.Contains(body, "livecell_router_resolves_total") {
		t.Errorf("router /metrics lacks livecell_router_resolves_total")
	}
}

func get(t *testing.T, u string, want int) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", u, resp.StatusCode, want, b)
	}
	return string(b)
}

func TestCLIHelpAndValidate(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"--help"}, 0, "probe"},
		{[]string{"dev", "--help"}, 0, "every cell in cells.yaml"},
		{[]string{"cells", "validate"}, 0, "ok, 2 cells"},
		{[]string{"cells", "validate", "testdata/bad-cells.yaml"}, 1, "duplicate id"},
		{[]string{"cell", "--cell", "mars"}, 1, `"mars" is not in cells.yaml`},
		{[]string{"cell", "--cell", "eu-west", "--services", "teleport"}, 1, `unknown service "teleport"`},
		{[]string{"version"}, 0, "go1."},
		{[]string{"nosuch"}, 1, "unknown command"},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), tt.args, &out, &errOut)
		if code != tt.wantCode {
			t.Errorf("livecell %v: exit %d, want %d (stderr %s)", tt.args, code, tt.wantCode, errOut.String())
		}
		if all := out.String() + errOut.String(); !strings.Contains(all, tt.wantOut) {
			t.Errorf("livecell %v: output lacks %q:\n%s", tt.args, tt.wantOut, all)
		}
	}
}

func TestProbeFailsClearly(t *testing.T) {
	// Nothing listens on this port: the probe must name the stage and exit 1.
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"probe", "--json", "--router", "http://127.0.0.1:1", "--timeout", "5s"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("probe against nothing: exit %d, want 1", code)
	}
	var res probe.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("probe --json output %q: %v", out.String(), err)
	}
	if res.OK || res.Stage != "resolve" || res.Code != "unavailable" {
		t.Fatalf("probe result = %+v, want ok=false stage=resolve code=unavailable", res)
	}
	if !strings.Contains(errOut.String(), "router unreachable") || !strings.Contains(errOut.String(), "127.0.0.1:1") {
		t.Fatalf("stderr %q lacks a clear message", errOut.String())
	}
}
