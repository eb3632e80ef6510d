package accountsapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

func TestClientSuccess(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var gotAuth, gotCT string
	var gotBody RegisterRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotCT = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		switch r.Method + " " + r.URL.Path {
		case "POST " + PathRegister, "POST " + PathLogin:
			if err := json.NewDecoder(r.Body).Decode(&gotBody); err != nil {
				t.Errorf("server: decode body: %v", err)
			}
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == PathRegister {
				w.WriteHeader(http.StatusCreated)
			}
			io.WriteString(w, `{"player_id":"p1","home_cell":"eu-west","access_token":"tok","token_type":"Bearer","expires_in":900}`)
		case "GET " + PathMe:
			io.WriteString(w, `{"player_id":"p1","username":"alice","home_cell":"eu-west","created_at":"2025-03-01T12:00:00Z"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/", HTTP: srv.Client()} // trailing slash must not double up
	ctx := context.Background()
	wantAuth := AuthResponse{PlayerID: "p1", HomeCell: "eu-west", AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 900}

	got, err := c.Register(ctx, RegisterRequest{Username: "alice", Password: "correct horse"})
	if err != nil || got != wantAuth {
		t.Fatalf("Register = %+v, %v; want %+v, nil", got, err, wantAuth)
	}
	if gotBody != (RegisterRequest{Username: "alice", Password: "correct horse"}) || gotCT != "application/json" {
		t.Errorf("server got body %+v content type %q, want the request as JSON", gotBody, gotCT)
	}

	got, err = c.Login(ctx, LoginRequest{Username: "alice", Password: "pw"})
	if err != nil || got != wantAuth {
		t.Fatalf("Login = %+v, %v; want %+v, nil", got, err, wantAuth)
	}

	me, err := c.Me(ctx, "tok")
	wantMe := Me{PlayerID: "p1", Username: "alice", HomeCell: "eu-west", CreatedAt: created}
	if err != nil || me.PlayerID != wantMe.PlayerID || me.Username != wantMe.Username || me.HomeCell != wantMe.HomeCell || !me.CreatedAt.Equal(created) {
		t.Fatalf("Me = %+v, %v; want %+v, nil", me, err, wantMe)
	}
	if gotAuth != "Bearer tok" {
		t.Errorf("Me sent Authorization %q, want %q", gotAuth, "Bearer tok")
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantCode   apierr.Code
		wantMsg    string
		wantRetry  time.Duration
		wantStatus int
	}{
		{"coded 401", 401, nil, `{"code":"invalid_credentials","message":"invalid username or password"}`, apierr.InvalidCredentials, "invalid username or password", 0, 401},
		{"coded 409", 409, nil, `{"code":"conflict","message":"username is taken"}`, apierr.Conflict, "username is taken", 0, 409},
		{"rate limited with retry-after", 429, map[string]string{"Retry-After": "7"}, `{"code":"rate_limited","message":"slow down"}`, apierr.RateLimited, "slow down", 7 * time.Second, 429},
		{"proxy html 502", 502, nil, `<html>bad gateway</html>`, apierr.Unavailable, "service unavailable, retry later", 0, 503},
		{"unknown code 400", 400, nil, `{"code":"made_up","message":"x"}`, apierr.BadRequest, "bad_request", 0, 400},
		{"empty 404", 404, nil, ``, apierr.NotFound, "not_found", 0, 404},
		{"bad retry-after ignored", 503, map[string]string{"Retry-After": "soon"}, `{"code":"unavailable","message":"later"}`, apierr.Unavailable, "later", 0, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
			_, err := c.Login(context.Background(), LoginRequest{Username: "a", Password: "b"})
			var e *apierr.Error
			if !errors.As(err, &e) {
				t.Fatalf("Login error = %v (%T), want *apierr.Error", err, err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("code = %q, want %q", e.Code, tt.wantCode)
			}
			if got := apierr.MessageOf(err); got != tt.wantMsg {
				t.Errorf("message = %q, want %q", got, tt.wantMsg)
			}
			if e.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetry)
			}
			if got := e.Code.HTTPStatus(); got != tt.wantStatus {
				t.Errorf("code's HTTP status = %d, want %d", got, tt.wantStatus)
			}
		})
	}
}

func TestClientMalformedSuccessBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"player_id":`)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	_, err := c.Me(context.Background(), "tok")
	if got := apierr.CodeOf(err); got != apierr.Internal {
		t.Fatalf("Me on truncated JSON: code = %q (err %v), want %q", got, err, apierr.Internal)
	}
}

func TestClientOversizedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"username":"`+strings.Repeat("a", httpapi.MaxResponse)+`"}`)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	_, err := c.Me(context.Background(), "tok")
	if got := apierr.CodeOf(err); got != apierr.Internal {
		t.Fatalf("Me on %d-byte body: code = %q (err %v), want %q", httpapi.MaxResponse, got, err, apierr.Internal)
	}
}

func TestClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := &Client{BaseURL: url}
	_, err := c.Register(context.Background(), RegisterRequest{Username: "alice", Password: "password1"})
	if got := apierr.CodeOf(err); got != apierr.Unavailable {
		t.Fatalf("Register to a closed server: code = %q (err %v), want %q", got, err, apierr.Unavailable)
	}
}

func TestClientHonoursContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	_, err := c.Me(ctx, "tok")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Me past its deadline: err = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := httpapi.RetryAfter(tt.h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestWireNames(t *testing.T) {
	linked := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"AuthResponse", AuthResponse{PlayerID: "p", HomeCell: "c", AccessToken: "t", TokenType: TokenTypeBearer, ExpiresIn: 60, RefreshToken: "r", RefreshExpiresIn: 3600, NewAccount: true},
			`{"player_id":"p","home_cell":"c","access_token":"t","token_type":"Bearer","expires_in":60,"refresh_token":"r","refresh_expires_in":3600,"new_account":true}`},
		{"AuthResponse of a returning player", AuthResponse{PlayerID: "p", HomeCell: "c", AccessToken: "t", TokenType: TokenTypeBearer, ExpiresIn: 60, RefreshToken: "r", RefreshExpiresIn: 3600},
			`{"player_id":"p","home_cell":"c","access_token":"t","token_type":"Bearer","expires_in":60,"refresh_token":"r","refresh_expires_in":3600}`},
		{"Me", Me{PlayerID: "p", Username: "u", HomeCell: "c", CreatedAt: linked, HasPassword: true,
			Identities: []Identity{{Provider: ProviderSteam, Subject: "7656", LinkedAt: linked}, {Provider: ProviderEpic, Subject: "e", DisplayName: "Alyx", LinkedAt: linked}}},
			`{"player_id":"p","username":"u","home_cell":"c","created_at":"2025-01-02T03:04:05Z","has_password":true,"identities":[` +
				`{"provider":"steam","subject":"7656","linked_at":"2025-01-02T03:04:05Z"},{"provider":"epic","subject":"e","display_name":"Alyx","linked_at":"2025-01-02T03:04:05Z"}]}`},
		{"SteamLoginRequest", SteamLoginRequest{Ticket: "14ab"}, `{"ticket":"14ab"}`},
		{"EpicLoginRequest", EpicLoginRequest{IDToken: "eyJ"}, `{"id_token":"eyJ"}`},
		{"RefreshRequest", RefreshRequest{RefreshToken: "r"}, `{"refresh_token":"r"}`},
		{"LogoutRequest", LogoutRequest{RefreshToken: "r"}, `{"refresh_token":"r"}`},
		{"LinkRequest steam", LinkRequest{Provider: ProviderSteam, Ticket: "14ab"}, `{"provider":"steam","ticket":"14ab"}`},
		{"LinkRequest epic", LinkRequest{Provider: ProviderEpic, IDToken: "eyJ"}, `{"provider":"epic","id_token":"eyJ"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s JSON = %s, want %s", tt.name, b, tt.want)
		}
	}
}

func TestPathIdentity(t *testing.T) {
	tests := []struct{ provider, want string }{
		{ProviderSteam, "/v1/accounts/me/identities/steam"},
		{"a/b", "/v1/accounts/me/identities/a%2Fb"},
		{"x y", "/v1/accounts/me/identities/x%20y"},
	}
	for _, tt := range tests {
		if got := PathIdentity(tt.provider); got != tt.want {
			t.Errorf("PathIdentity(%q) = %q, want %q", tt.provider, got, tt.want)
		}
	}
}

// TestClientNewMethods checks what each new method sends and how it reads
// the answer, 204s included.
func TestClientNewMethods(t *testing.T) {
	type seen struct{ method, path, auth, body string }
	var got seen
	auth := `{"player_id":"p1","home_cell":"eu-west","access_token":"tok","token_type":"Bearer","expires_in":900,"refresh_token":"rt","refresh_expires_in":2592000}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), string(b)}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == PathSteamLogin:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, strings.Replace(auth, "}", `,"new_account":true}`, 1))
		case r.Method == http.MethodPost && (r.URL.Path == PathEpicLogin || r.URL.Path == PathRefresh):
			io.WriteString(w, auth)
		case r.Method == http.MethodPost && r.URL.Path == PathIdentities:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"provider":"steam","subject":"7656","linked_at":"2025-03-01T12:00:00Z"}`)
		case r.URL.Path == PathLogout || r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	wantAuth := AuthResponse{PlayerID: "p1", HomeCell: "eu-west", AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 900, RefreshToken: "rt", RefreshExpiresIn: 2592000}

	tests := []struct {
		name     string
		call     func() (any, error)
		want     any
		wantSeen seen
	}{
		{"SteamLogin", func() (any, error) { return c.SteamLogin(ctx, "14ab") }, func() AuthResponse { a := wantAuth; a.NewAccount = true; return a }(),
			seen{"POST", PathSteamLogin, "", `{"ticket":"14ab"}`}},
		{"EpicLogin", func() (any, error) { return c.EpicLogin(ctx, "eyJ") }, wantAuth, seen{"POST", PathEpicLogin, "", `{"id_token":"eyJ"}`}},
		{"Refresh", func() (any, error) { return c.Refresh(ctx, "rt0") }, wantAuth, seen{"POST", PathRefresh, "", `{"refresh_token":"rt0"}`}},
		{"Logout", func() (any, error) { return nil, c.Logout(ctx, "rt0") }, nil, seen{"POST", PathLogout, "", `{"refresh_token":"rt0"}`}},
		{"Link", func() (any, error) {
			return c.Link(ctx, "tok", LinkRequest{Provider: ProviderSteam, Ticket: "14ab"})
		}, Identity{Provider: "steam", Subject: "7656", LinkedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
			seen{"POST", PathIdentities, "Bearer tok", `{"provider":"steam","ticket":"14ab"}`}},
		{"Unlink", func() (any, error) { return nil, c.Unlink(ctx, "tok", "ep/ic") }, nil,
			seen{"DELETE", PathIdentities + "/ep%2Fic", "Bearer tok", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.call()
			if err != nil {
				t.Fatalf("%s = %v, want nil", tt.name, err)
			}
			if out != tt.want {
				t.Errorf("%s = %+v, want %+v", tt.name, out, tt.want)
			}
			if got != tt.wantSeen {
				t.Errorf("server saw %+v, want %+v", got, tt.wantSeen)
			}
		})
	}
}

func TestClientNewMethodsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"code":"rate_limited","message":"too many sign-in attempts, retry later"}`)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"SteamLogin": func() error { _, err := c.SteamLogin(ctx, "t"); return err },
		"EpicLogin":  func() error { _, err := c.EpicLogin(ctx, "t"); return err },
		"Refresh":    func() error { _, err := c.Refresh(ctx, "t"); return err },
		"Logout":     func() error { return c.Logout(ctx, "t") },
		"Link":       func() error { _, err := c.Link(ctx, "tok", LinkRequest{Provider: "steam", Ticket: "t"}); return err },
		"Unlink":     func() error { return c.Unlink(ctx, "tok", "steam") },
	} {
		err := call()
		e, ok := apierr.From(err)
		if !ok || e.Code != apierr.RateLimited || e.RetryAfter != 3*time.Second {
			t.Errorf("%s on 429 = %v, want rate_limited with RetryAfter 3s", name, err)
		}
	}
}
