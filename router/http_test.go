package router

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/telemetry"
)

func get(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHTTPResolve(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	h := f.r.Handler()

	rec := get(h, "GET", "/v1/resolve?player="+playerEU)
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"player_id": playerEU, "home_cell": "eu-west", "region": "europe-west1",
		"gateway": "127.0.0.1:4110", "api": "127.0.0.1:4111", "placement": "existing",
	}
	if len(body) != len(want) {
		t.Errorf("got fields %v, want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s: got %v, want %v", k, body[k], v)
		}
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}

	rec = get(h, "GET", "/v1/resolve?region_hint=us-east1")
	var res Resolution
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != 200 {
		t.Fatalf("new player: got %d %s", rec.Code, rec.Body)
	}
	if res.HomeCell != "us-east" || res.Placement != PlacementNew || res.PlayerID != "" {
		t.Errorf("new player: got %+v, want us-east, new, no player id", res)
	}

	// An empty value means "not given".
	if rec := get(h, "GET", "/v1/resolve?player=&region_hint="); rec.Code != 200 {
		t.Errorf("empty params: got %d %s, want 200", rec.Code, rec.Body)
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string
		allDown  bool
		wantCode int
		wantErr  apierr.Code
	}{
		{"player not a uuid", "GET", "/v1/resolve?player=bob", false, 400, apierr.BadRequest},
		{"player sql", "GET", "/v1/resolve?player=" + url.QueryEscape("1' OR '1'='1"), false, 400, apierr.BadRequest},
		{"hint sql", "GET", "/v1/resolve?region_hint=" + url.QueryEscape("eu-west'; DROP TABLE players;--"), false, 400, apierr.BadRequest},
		{"hint 10 KB", "GET", "/v1/resolve?region_hint=" + strings.Repeat("a", 10<<10), false, 400, apierr.BadRequest},
		{"hint just over the limit", "GET", "/v1/resolve?region_hint=" + strings.Repeat("a", placement.MaxKeyLen+1), false, 400, apierr.BadRequest},
		{"hint NUL", "GET", "/v1/resolve?region_hint=eu%00west", false, 400, apierr.BadRequest},
		{"unknown param", "GET", "/v1/resolve?player_id=" + playerEU, false, 400, apierr.BadRequest},
		{"repeated param", "GET", "/v1/resolve?player=" + playerEU + "&player=" + playerUS, false, 400, apierr.BadRequest},
		{"bad escape", "GET", "/v1/resolve?player=%zz", false, 400, apierr.BadRequest},
		{"semicolon", "GET", "/v1/resolve?player=a;b", false, 400, apierr.BadRequest},
		{"unknown player", "GET", "/v1/resolve?player=" + playerUnknown, false, 404, apierr.UnknownPlayer},
		{"all down", "GET", "/v1/resolve", true, 503, apierr.NoHealthyCell},
		{"all down, existing", "GET", "/v1/resolve?player=" + playerEU, true, 503, apierr.NoHealthyCell},
		{"wrong method", "POST", "/v1/resolve", false, 405, apierr.MethodNotAllowed},
		{"wrong method cells", "DELETE", "/v1/cells", false, 405, apierr.MethodNotAllowed},
		{"unknown path", "GET", "/v1/resolve/extra", false, 404, apierr.NotFound},
		{"root", "GET", "/", false, 404, apierr.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if !tt.allDown {
				f.round(t, 1)
			}
			rec := get(f.r.Handler(), tt.method, tt.target)
			if rec.Code != tt.wantCode {
				t.Errorf("status: got %d, want %d (%s)", rec.Code, tt.wantCode, rec.Body)
			}
			var body httpapi.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("got non-JSON body %q: %v", rec.Body, err)
			}
			if body.Code != tt.wantErr || body.Message == "" {
				t.Errorf("body: got %+v, want code %s with a message", body, tt.wantErr)
			}
			if strings.Contains(body.Message, "DROP TABLE") || len(body.Message) > 300 {
				t.Errorf("message echoes client input: %q", body.Message)
			}
		})
	}
}

func TestHTTPCells(t *testing.T) {
	f := newFixture(t, Config{FailThreshold: 1})
	f.status.up("us-east", 250)
	f.status.down("eu-north")
	f.round(t, 1)
	rec := get(f.r.Handler(), "GET", "/v1/cells")
	if rec.Code != 200 {
		t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
	}
	var got CellsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || len(got.Cells) != 4 {
		t.Fatalf("got version %d with %d cells, want 1 with 4", got.Version, len(got.Cells))
	}
	tests := []struct {
		id       string
		up       bool
		state    string
		sessions int
		load     float64
	}{
		{"eu-west", true, "active", 0, 0},
		{"eu-north", false, "active", 0, 0},
		{"us-east", true, "active", 250, 0.25},
		{"ap-south", true, "draining", 0, 0},
	}
	for i, tt := range tests {
		c := got.Cells[i]
		if c.ID != tt.id || c.Up != tt.up || c.State != tt.state || c.Sessions != tt.sessions || c.Load != tt.load {
			t.Errorf("cell %d: got %+v, want id=%s up=%v state=%s sessions=%d load=%v", i, c, tt.id, tt.up, tt.state, tt.sessions, tt.load)
		}
		if c.LastProbe == "" {
			t.Errorf("%s: got no last_probe, want one", c.ID)
		}
	}
	if got.Cells[1].LastError == "" {
		t.Error("eu-north: got no last_error, want the probe's")
	}
}

// The route label must be the pattern, not the raw path, when the process
// wraps Handler with telemetry.InstrumentHTTP.
func TestHTTPInstrumentedRoutes(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	reg := prometheus.NewRegistry()
	h := telemetry.InstrumentHTTP(reg, "router", nil, f.r.Handler())
	get(h, "GET", "/v1/resolve?player="+playerEU)
	get(h, "GET", "/v1/resolve?player=bad")
	get(h, "GET", "/some/random/path")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "livecell_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "route":
					route = lp.GetValue()
				case "code":
					code = lp.GetValue()
				}
			}
			got[route+" "+code] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"/v1/resolve 200": 1, "/v1/resolve 400": 1, "/ 404": 1}
	if len(got) != len(want) {
		t.Errorf("got series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	var (
		mu      sync.Mutex
		gotPath string
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotPath = r.URL.Path
		mu.Unlock()
		httpapi.WriteJSON(w, 200, cellapi.Status{Cell: "eu-west", Healthy: true, Sessions: 12, Version: "v1"})
	})
	ok := httptest.NewServer(mux)
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "db down", http.StatusInternalServerError)
	}))
	defer broken.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>not json"))
	}))
	defer garbage.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := closed.Listener.Addr().String()
	closed.Close()

	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	tests := []struct {
		name    string
		api     string
		wantErr string
		want    cellapi.Status
	}{
		{name: "ok", api: addr(ok), want: cellapi.Status{Cell: "eu-west", Healthy: true, Sessions: 12, Version: "v1"}},
		{name: "non-200", api: addr(broken), wantErr: "HTTP 500"},
		{name: "not json", api: addr(garbage), wantErr: "decode"},
		{name: "refused", api: closedAddr, wantErr: "eu-west"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := HTTPStatus{Client: ok.Client()}
			st, err := src.Status(context.Background(), config.Cell{ID: "eu-west", API: tt.api})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want error containing %q", st, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st != tt.want {
				t.Errorf("got %+v, want %+v", st, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotPath != cellapi.StatusPath {
				t.Errorf("path: got %q, want %q", gotPath, cellapi.StatusPath)
			}
		})
	}

	// End to end: a router with the default HTTP source probes a real server.
	cells := &config.Cells{Version: 1, Cells: []config.Cell{{ID: "eu-west", Region: "europe-west1",
		Gateway: "127.0.0.1:1", API: addr(ok), Capacity: 100, State: config.StateActive}}}
	r, err := New(Config{Cells: cells}, Deps{Homes: newDir()})
	if err != nil {
		t.Fatal(err)
	}
	r.probeRound(context.Background())
	if c := r.Cells().Cells[0]; !c.Up || c.Sessions != 12 || c.Version != "v1" {
		t.Errorf("probed over HTTP: got %+v, want up with 12 sessions, version v1", c)
	}
}
