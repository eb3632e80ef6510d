package opsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

const (
	opWho       protocol.Opcode = 0x0101
	opFail      protocol.Opcode = 0x0201
	opAbsent    protocol.Opcode = 0x0999
	serverToken                 = "server-token"
)

func bearerAuth(r *http.Request) error {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return err
	}
	if tok != serverToken {
		return apierr.New(apierr.InvalidToken, "not a server token")
	}
	return nil
}

type who struct {
	Player, Session, Cell, Payload string
	HasDeadline                    bool
}

func testHandlers() protocol.Handlers {
	return protocol.Handlers{
		opWho: func(ctx context.Context, c protocol.Caller, p []byte) ([]byte, error) {
			_, dl := ctx.Deadline()
			return json.Marshal(who{c.PlayerID, c.SessionID, c.Cell, string(p), dl})
		},
		opFail: func(ctx context.Context, _ protocol.Caller, p []byte) ([]byte, error) {
			switch string(p) {
			case "coded":
				return nil, apierr.New(apierr.Conflict, "item already equipped")
			case "leaky":
				return nil, errors.New("pq: connection refused to 10.0.0.5")
			case "retry":
				return nil, &apierr.Error{Code: apierr.RateLimited, RetryAfter: 2 * time.Second}
			case "panic":
				panic("service bug")
			}
			return nil, nil
		},
	}
}

func newServer(t *testing.T) (*httptest.Server, *Client) {
	t.Helper()
	srv := httptest.NewServer(NewHandler(testHandlers(), bearerAuth, nil))
	t.Cleanup(srv.Close)
	return srv, &Client{BaseURL: srv.URL, HTTP: srv.Client(),
		Token: func(context.Context) (string, error) { return serverToken, nil }}
}

func TestRoundTrip(t *testing.T) {
	_, c := newServer(t)
	hs := c.Handlers(opWho, opFail)
	if len(hs) != 2 {
		t.Fatalf("got %d handlers, want 2", len(hs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := hs[opWho](ctx, protocol.Caller{PlayerID: "alice", SessionID: "s1", Cell: "eu-west"}, []byte(`{"q":1}`))
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	var got who
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatalf("decode %q: %v", resp, err)
	}
	want := who{"alice", "s1", "eu-west", `{"q":1}`, true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// An empty answer stays empty.
	if resp, err := hs[opFail](ctx, protocol.Caller{PlayerID: "alice"}, nil); err != nil || resp != nil {
		t.Errorf("got %q, %v, want nil, nil", resp, err)
	}
}

func TestErrorCodes(t *testing.T) {
	_, c := newServer(t)
	h := c.Handlers(opFail)[opFail]
	tests := []struct {
		payload    string
		code       apierr.Code
		msg        string
		retryAfter time.Duration
	}{
		{"coded", apierr.Conflict, "item already equipped", 0},
		{"leaky", apierr.Internal, "internal error", 0},
		{"retry", apierr.RateLimited, "too many requests", 2 * time.Second},
		{"panic", apierr.Internal, "internal error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			_, err := h(context.Background(), protocol.Caller{PlayerID: "alice"}, []byte(tt.payload))
			e, ok := apierr.From(err)
			if !ok {
				t.Fatalf("got error %v (%T), want an *apierr.Error", err, err)
			}
			if e.Code != tt.code || apierr.MessageOf(err) != tt.msg {
				t.Errorf("got %s %q, want %s %q", e.Code, apierr.MessageOf(err), tt.code, tt.msg)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("got retry after %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if strings.Contains(err.Error(), "10.0.0.5") {
				t.Errorf("got %q, want the service's internal cause kept on the service", err)
			}
		})
	}
}

// TestUnauthorized: a refused server credential reaches the player as a
// retryable outage, never as a token error about their own session.
func TestUnauthorized(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name  string
		token func(context.Context) (string, error)
		code  apierr.Code
	}{
		{"no token", nil, apierr.Unavailable},
		{"wrong token", func(context.Context) (string, error) { return "player-token", nil }, apierr.Unavailable},
		{"token source fails", func(context.Context) (string, error) { return "", errors.New("no signing key") }, apierr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), Token: tt.token}
			_, err := c.Handlers(opWho)[opWho](context.Background(), protocol.Caller{PlayerID: "alice"}, nil)
			if got := apierr.CodeOf(err); got != tt.code {
				t.Errorf("got code %s (%v), want %s", got, err, tt.code)
			}
		})
	}
}

func TestUnknownOpcode(t *testing.T) {
	srv, c := newServer(t)
	_, err := c.Handlers(opAbsent)[opAbsent](context.Background(), protocol.Caller{PlayerID: "alice"}, nil)
	if got := apierr.CodeOf(err); got != apierr.UnknownOpcode {
		t.Errorf("got code %s (%v), want unknown_opcode", got, err)
	}
	// And on the wire: 404 with the coded JSON body.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+PathPrefix+"0999", nil)
	req.Header.Set("Authorization", "Bearer "+serverToken)
	req.Header.Set(HeaderPlayer, "alice")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body httpapi.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || body.Code != apierr.UnknownOpcode {
		t.Errorf("got %d %s, want 404 unknown_opcode", resp.StatusCode, body.Code)
	}
}

func TestMalformedRequests(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name, method, path string
		player             string
		body               string
		status             int
		code               apierr.Code
	}{
		{"GET", http.MethodGet, PathPrefix + "0101", "alice", "", 405, apierr.MethodNotAllowed},
		{"opcode not hex", http.MethodPost, PathPrefix + "zz01", "alice", "", 400, apierr.BadRequest},
		{"opcode too long", http.MethodPost, PathPrefix + "00101", "alice", "", 400, apierr.BadRequest},
		{"no player", http.MethodPost, PathPrefix + "0101", "", "", 400, apierr.BadRequest},
		{"too large", http.MethodPost, PathPrefix + "0101", "alice", strings.Repeat("x", protocol.HardMaxFrame+1), 413, apierr.PayloadTooLarge},
		{"other path", http.MethodPost, "/internal/v1/other", "alice", "", 404, apierr.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+serverToken)
			if tt.player != "" {
				req.Header.Set(HeaderPlayer, tt.player)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body httpapi.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode error body: %v", err)
			}
			if resp.StatusCode != tt.status || body.Code != tt.code {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body.Code, tt.status, tt.code)
			}
		})
	}
}

func TestServiceDown(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{BaseURL: "http://" + addr, Token: func(context.Context) (string, error) { return serverToken, nil }}
	_, err = c.Handlers(opWho)[opWho](context.Background(), protocol.Caller{PlayerID: "alice"}, nil)
	code := apierr.CodeOf(err)
	if code != apierr.Unavailable || !code.Retryable() {
		t.Errorf("got code %s (%v), want retryable unavailable", code, err)
	}
	if got := apierr.MessageOf(err); strings.Contains(got, addr) {
		t.Errorf("got message %q, want the service address kept out of it", got)
	}
}

func TestProxyErrorWithoutJSON(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	c := &Client{BaseURL: proxy.URL, HTTP: proxy.Client()}
	_, err := c.Handlers(opWho)[opWho](context.Background(), protocol.Caller{PlayerID: "alice"}, nil)
	if got := apierr.CodeOf(err); got != apierr.Unavailable {
		t.Errorf("got code %s (%v), want unavailable", got, err)
	}
}

func TestNewHandlerNeedsAuthorize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHandler with a nil authorize did not panic, want it refused")
		}
	}()
	NewHandler(testHandlers(), nil, nil)
}

func TestSlowServiceTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	tests := []struct {
		name string
		c    *Client
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"context deadline", &Client{BaseURL: slow.URL, HTTP: slow.Client()},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			}},
		{"client timeout", &Client{BaseURL: slow.URL, HTTP: &http.Client{Timeout: 50 * time.Millisecond}},
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := tt.c.Handlers(opWho)[opWho](ctx, protocol.Caller{PlayerID: "alice"}, nil)
			if got := apierr.CodeOf(err); got != apierr.Timeout {
				t.Errorf("got code %s (%v), want timeout", got, err)
			}
		})
	}
}
