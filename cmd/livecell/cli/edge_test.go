package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/config"
)

func TestEdgeFlagsConfig(t *testing.T) {
	cells := &config.Cells{Router: config.RouterConf{Listen: "127.0.0.1:4100"}, Cells: []config.Cell{
		{ID: "eu-west", Edges: []config.Edge{{ID: "fra", TCP: "10.0.9.1:4190", QUIC: "10.0.9.1:4190", WS: "10.0.9.1:4191"}}},
		{ID: "us-east"},
	}}
	for _, tt := range []struct {
		name    string
		f       edgeFlags
		tcp, ws string
		err     string
	}{
		{"from cells.yaml", edgeFlags{id: "fra"}, "10.0.9.1:4190", "10.0.9.1:4191", ""},
		{"a flag overrides one address", edgeFlags{id: "fra", ws: "127.0.0.1:0"}, "10.0.9.1:4190", "127.0.0.1:0", ""},
		{"no id", edgeFlags{}, "", "", "--edge is required (edges in cells.yaml: [fra])"},
		{"unknown id", edgeFlags{id: "ams"}, "", "", `--edge "ams" is not in cells.yaml`},
		{"unknown id with addresses", edgeFlags{id: "ams", tcp: "127.0.0.1:0"}, "127.0.0.1:0", "", ""},
	} {
		cfg, err := tt.f.config(cells)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || cfg.TCPListen != tt.tcp || cfg.WSListen != tt.ws || cfg.ID != tt.f.id {
			t.Errorf("%s: got %+v, %v; want tcp %s ws %s", tt.name, cfg, err, tt.tcp, tt.ws)
		}
	}
	for _, tt := range []struct {
		flag string
		want []string
	}{
		{"", []string{"http://127.0.0.1:4100"}},
		{"none", nil},
		{"http://r1:4100, http://r2:4100,", []string{"http://r1:4100", "http://r2:4100"}},
	} {
		f := edgeFlags{routers: tt.flag}
		if got := f.routerURLs(cells); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("--router %q: got %v, want %v", tt.flag, got, tt.want)
		}
	}
}

func TestEdgeRefusesToStartWithoutCredentials(t *testing.T) {
	t.Setenv("LIVECELL_SIGNING_KEY_FILE", "")
	t.Setenv("LIVECELL_JWKS_FILE", "")
	_, errOut, code := runCLI(t, "edge", "--edge", "eu-edge-1", "--metrics-listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "no keys") {
		t.Fatalf("edge without keys: exit %d, stderr %q; want 1 and 'no keys'", code, errOut)
	}
}
