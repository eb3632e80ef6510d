package cell

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

var cheapArgon = accounts.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

func testCells(t *testing.T) *config.Cells {
	t.Helper()
	c, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startCell(t *testing.T, cfg Config, deps Deps) *Cell {
	t.Helper()
	// A cell that runs HTTP services would take cells.yaml's API address,
	// which a running local world may hold; a gateway alone takes none.
	if cfg.APIListen == "" && (len(cfg.Services) == 0 || slices.Contains(cfg.Services, ServiceAccounts)) {
		cfg.APIListen = "127.0.0.1:0"
	}
	cfg.GatewayListen = "127.0.0.1:0"
	cfg.Accounts.PasswordAuth = true
	cfg.Accounts.Argon2 = cheapArgon
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

// TestGatewayAloneForwardsToServices runs accounts and the gateway as two
// cells of the same cell id, as two processes would: the gateway forwards
// accounts.me to the accounts API with a server credential.
func TestGatewayAloneForwardsToServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cells := testCells(t)
	eu, _ := cells.Cell("eu-west")
	keys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.NewMemory()

	acc := startCell(t, Config{Cell: eu, Cells: cells, Services: []string{ServiceAccounts}},
		Deps{Keys: keys, AccountsStore: memstore.New(), Directory: dir})
	if acc.GatewayAddr() != "" {
		t.Fatalf("accounts-only cell runs a gateway at %s", acc.GatewayAddr())
	}

	gwCell := eu
	gwCell.API = acc.APIAddr() // where the services of this cell answer
	gw := startCell(t, Config{Cell: gwCell, Cells: cells, Services: []string{ServiceGateway}}, Deps{Keys: keys})
	if gw.APIAddr() == acc.APIAddr() {
		t.Fatalf("gateway-only cell took the services' API address %s", gw.APIAddr())
	}

	client := accountsapi.Client{BaseURL: "http://" + acc.APIAddr(), HTTP: http.DefaultClient}
	auth, err := client.Register(ctx, accountsapi.RegisterRequest{Username: "split-process", Password: "correct horse"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if home, err := dir.Home(ctx, auth.PlayerID); err != nil || home != "eu-west" {
		t.Fatalf("directory home = %q, %v; want eu-west", home, err)
	}

	conn, err := gameclient.Dial(ctx, gw.GatewayAddr(), gameclient.Options{Token: auth.AccessToken})
	if err != nil {
		t.Fatalf("dial gateway: %v", err)
	}
	defer conn.Close()
	payload, err := conn.Request(ctx, protocol.OpAccountsMe, nil)
	if err != nil {
		t.Fatalf("accounts.me through the forwarding gateway: %v", err)
	}
	var me accountsapi.Me
	if err := json.Unmarshal(payload, &me); err != nil || me.PlayerID != auth.PlayerID || me.Username != "split-process" {
		t.Fatalf("accounts.me = %s (%v), want player %s", payload, err, auth.PlayerID)
	}

	// The status endpoint of the gateway process reports its session.
	var st cellapi.Status
	getJSON(t, "http://"+gw.APIAddr()+cellapi.StatusPath, &st)
	if st.Sessions != 1 || st.Cell != "eu-west" || !st.Healthy {
		t.Fatalf("gateway status = %+v, want 1 session in healthy eu-west", st)
	}
}

// TestInternalOpsRefusePlayerTokens: a player token must never pass as a
// server credential on the internal API.
func TestInternalOpsRefusePlayerTokens(t *testing.T) {
	cells := testCells(t)
	eu, _ := cells.Cell("eu-west")
	keys, _ := token.GenerateKeySet()
	c := startCell(t, Config{Cell: eu, Cells: cells}, Deps{Keys: keys, AccountsStore: memstore.New(), Directory: directory.NewMemory()})
	signer, _ := token.NewSigner(keys, nil)
	playerTok, _, _ := signer.IssuePlayer("01a20c11-1853-7396-8348-f7ee60f67bac", "eu-west", time.Minute)
	serverTok, _, _ := signer.IssueServer("test", []string{"ops"}, time.Minute)

	for _, tt := range []struct {
		name, tok string
		want      int
	}{
		{"player token", playerTok, http.StatusUnauthorized},
		{"no token", "", http.StatusUnauthorized},
		{"server token", serverTok, http.StatusNotFound}, // authorized; the player does not exist
	} {
		req, _ := http.NewRequest("POST", "http://"+c.APIAddr()+"/internal/v1/ops/0101", strings.NewReader("{}"))
		if tt.tok != "" {
			req.Header.Set("Authorization", "Bearer "+tt.tok)
		}
		req.Header.Set("X-Livecell-Player", "01a20c11-1853-7396-8348-f7ee60f67bac")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
}

// TestGatewayRefusesPlayersOfOtherCells: a token homed to a cell that does
// not fail over here is refused; one that fails over here is admitted.
func TestGatewayRefusesPlayersOfOtherCells(t *testing.T) {
	cells := testCells(t)
	cells.Cells = append(cells.Cells, config.Cell{ID: "ap-south", Region: "asia-south1", Gateway: "127.0.0.1:1", API: "127.0.0.1:2", Capacity: 1, State: config.StateActive})
	eu, _ := cells.Cell("eu-west")
	keys, _ := token.GenerateKeySet()
	c := startCell(t, Config{Cell: eu, Cells: cells}, Deps{Keys: keys, AccountsStore: memstore.New(), Directory: directory.NewMemory()})
	signer, _ := token.NewSigner(keys, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, tt := range []struct {
		home     string
		wantCode apierr.Code
	}{
		{"eu-west", ""},
		{"us-east", ""}, // us-east fails over to eu-west
		{"ap-south", apierr.PermissionDenied},
	} {
		tok, _, _ := signer.IssuePlayer("01a20c11-1853-7396-8348-f7ee60f67bac", tt.home, time.Minute)
		conn, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{Token: tok})
		if tt.wantCode == "" {
			if err != nil {
				t.Errorf("home %s: dial: %v", tt.home, err)
				continue
			}
			conn.Close()
			continue
		}
		if got := apierr.CodeOf(err); err == nil || got != tt.wantCode {
			t.Errorf("home %s: dial error code %q (%v), want %q", tt.home, got, err, tt.wantCode)
		}
	}
}

func TestParseServices(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "accounts,catalog,inventory,store,gateway", false},
		{"all", "accounts,catalog,inventory,store,gateway", false},
		{"gateway", "gateway", false},
		{" accounts , gateway,accounts", "accounts,gateway", false},
		{"store,inventory", "store,inventory", false},
		{"wallet", "", true},
	} {
		got, err := ParseServices(tt.in)
		if (err != nil) != tt.wantErr || strings.Join(got, ",") != tt.want {
			t.Errorf("ParseServices(%q) = %v, %v; want %q (err %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

// TestResumeToken: the resume token from a Welcome admits the same player
// again without an access token; a forged one does not.
func TestResumeToken(t *testing.T) {
	cells := testCells(t)
	eu, _ := cells.Cell("eu-west")
	keys, _ := token.GenerateKeySet()
	c := startCell(t, Config{Cell: eu, Cells: cells}, Deps{Keys: keys, AccountsStore: memstore.New(), Directory: directory.NewMemory()})
	signer, _ := token.NewSigner(keys, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const player = "01a20c11-1853-7396-8348-f7ee60f67bac"
	tok, _, _ := signer.IssuePlayer(player, "eu-west", time.Minute)

	first, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	resume := first.Welcome().ResumeToken
	first.Close()
	if resume == "" {
		t.Fatal("Welcome carries no resume token")
	}
	again, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{ResumeToken: resume})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	defer again.Close()
	if got := again.Welcome().PlayerID; got != player {
		t.Fatalf("resumed player = %q, want %q", got, player)
	}
	// An access token is not a resume token, and vice versa.
	if _, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{ResumeToken: tok}); apierr.CodeOf(err) != apierr.InvalidToken {
		t.Fatalf("access token as resume token: %v, want invalid_token", err)
	}
	if _, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{Token: resume}); apierr.CodeOf(err) != apierr.InvalidToken {
		t.Fatalf("resume token as access token: %v, want invalid_token", err)
	}
}
