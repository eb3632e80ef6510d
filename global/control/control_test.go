package control_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

const (
	playerA = "6f1c2a7e-5b7d-4c1e-9a53-0d2b8f6e4c11"
	playerB = "0b9d7c55-1f7e-4f5a-8d3c-2a6b9e4d7f22"
)

// fakeHealth is the health view the router's prober would publish.
type fakeHealth struct{ resp router.CellsResponse }

func (f fakeHealth) Cells() router.CellsResponse { return f.resp }

func twoCells() fakeHealth {
	return fakeHealth{router.CellsResponse{Version: 1, Cells: []router.CellHealth{
		{ID: "eu-west", Region: "europe-west1", State: "active", Up: true, Sessions: 3, Capacity: 10, Load: 0.3},
		{ID: "us-east", Region: "us-east1", State: "active", Up: false, Capacity: 10, LastError: "connection refused"},
	}}}
}

type env struct {
	srv    *httptest.Server
	dir    *directory.Memory
	signer *token.Signer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ks, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.NewMemory()
	s, err := control.New(control.Deps{Directory: dir, Health: twoCells(), Verifier: token.NewVerifier(ks, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{srv: srv, dir: dir, signer: signer}
}

func (e *env) serverToken(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, _, err := e.signer.IssueServer("cell/eu-west", scopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) client(tok string) *control.Client {
	return &control.Client{BaseURL: e.srv.URL, Token: func(context.Context) (string, error) { return tok, nil }}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestDirectoryRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.serverToken(t, control.ScopeDirectoryWrite))

	if _, err := c.Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Fatalf("Home of a new player: got %v, want code %s", err, apierr.UnknownPlayer)
	}
	// Upper case in, canonical lower case stored: accounts and the router
	// must agree on one spelling.
	if err := c.SetHome(ctx(t), strings.ToUpper(playerA), "eu-west"); err != nil {
		t.Fatalf("SetHome: %v", err)
	}
	got, err := c.Home(ctx(t), playerA)
	if err != nil || got != "eu-west" {
		t.Fatalf("Home after SetHome: got %q, %v; want eu-west", got, err)
	}
	if got, _ := e.dir.Home(ctx(t), playerA); got != "eu-west" {
		t.Fatalf("directory holds %q for the player, want eu-west", got)
	}
	// Rehoming is the same write.
	if err := c.SetHome(ctx(t), playerA, "us-east"); err != nil {
		t.Fatalf("rehome: %v", err)
	}
	if got, err := c.Home(ctx(t), playerA); err != nil || got != "us-east" {
		t.Fatalf("Home after rehome: got %q, %v; want us-east", got, err)
	}
}

func TestSetHomeRefused(t *testing.T) {
	e := newEnv(t)
	playerTok, _, err := e.signer.IssuePlayer(playerA, "eu-west", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, token, player, cell string
		want                      apierr.Code
	}{
		{"no credential", "", playerA, "eu-west", apierr.Unauthenticated},
		{"player token", playerTok, playerA, "eu-west", apierr.InvalidToken},
		{"server token without scope", e.serverToken(t, "ops"), playerA, "eu-west", apierr.PermissionDenied},
		{"garbage token", "not-a-jwt", playerA, "eu-west", apierr.InvalidToken},
		{"unknown cell", e.serverToken(t, control.ScopeDirectoryWrite), playerA, "mars", apierr.BadRequest},
		{"player not a UUID", e.serverToken(t, control.ScopeDirectoryWrite), "alice", "eu-west", apierr.BadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(tt.token)
			if tt.token == "" {
				c.Token = nil
			}
			err := c.SetHome(ctx(t), tt.player, tt.cell)
			if got := apierr.CodeOf(err); got != tt.want {
				t.Fatalf("SetHome: got code %s (%v), want %s", got, err, tt.want)
			}
			if cell, err := e.dir.Home(ctx(t), playerA); err == nil {
				t.Fatalf("refused write still homed the player to %q", cell)
			}
		})
	}
	// Without a client-side credential the request is still sent and
	// refused by the server, never silently accepted.
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+control.PathDirectory+playerA, strings.NewReader(`{"cell":"eu-west"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous PUT: status %d, want 401", resp.StatusCode)
	}
}

func TestCellsServesHealthView(t *testing.T) {
	e := newEnv(t)
	got, err := (&control.Client{BaseURL: e.srv.URL}).Cells(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Cells) != 2 {
		t.Fatalf("got %d cells, want 2", len(got.Cells))
	}
	eu, us := got.Cells[0], got.Cells[1]
	if eu.ID != "eu-west" || !eu.Up || eu.Sessions != 3 || eu.Load != 0.3 {
		t.Errorf("eu-west: got %+v, want up with 3 sessions and load 0.3", eu)
	}
	if us.ID != "us-east" || us.Up || us.LastError != "connection refused" {
		t.Errorf("us-east: got %+v, want down with its last error", us)
	}
}

func TestCodedErrorsForBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		method, path, body string
		status             int
		code               apierr.Code
	}{
		{http.MethodGet, control.PathDirectory + "not-a-uuid", "", http.StatusBadRequest, apierr.BadRequest},
		{http.MethodGet, control.PathDirectory + playerB, "", http.StatusNotFound, apierr.UnknownPlayer},
		{http.MethodDelete, control.PathDirectory + playerB, "", http.StatusMethodNotAllowed, apierr.MethodNotAllowed},
		{http.MethodPost, control.PathCells, "", http.StatusMethodNotAllowed, apierr.MethodNotAllowed},
		{http.MethodGet, "/v1/nothing", "", http.StatusNotFound, apierr.NotFound},
	} {
		req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Code apierr.Code }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || body.Code != tt.code {
			t.Errorf("%s %s: got %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, body.Code, tt.status, tt.code)
		}
	}
}

func TestClientTransportFailures(t *testing.T) {
	// A proxy answering HTML for a dead upstream, then nothing at all: both
	// must read as "control plane unavailable", which the router's cache
	// rides out.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	if _, err := (&control.Client{BaseURL: proxy.URL}).Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Home through a failing proxy: got %v, want code unavailable", err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	if _, err := (&control.Client{BaseURL: url}).Home(ctx(t), playerA); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Home of a stopped control plane: got %v, want code unavailable", err)
	}
	if err := (&control.Client{BaseURL: url}).SetHome(ctx(t), playerA, "eu-west"); apierr.CodeOf(err) != apierr.Unauthenticated {
		t.Errorf("SetHome without a credential: got %v, want code unauthenticated before any request", err)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	_, err := control.New(control.Deps{})
	if err == nil || !strings.Contains(err.Error(), "Directory, Health, Verifier") {
		t.Fatalf("New with no deps: got %v, want an error naming Directory, Health, Verifier", err)
	}
}
