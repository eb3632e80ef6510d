package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

type login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body, ctype string
		want              apierr.Code
	}{
		{"ok", `{"username":"a","password":"b"}`, "application/json", ""},
		{"ok charset", `{"username":"a"}`, "application/json; charset=utf-8", ""},
		{"empty", ``, "application/json", apierr.BadRequest},
		{"garbage", `\x00\x01garbage`, "application/json", apierr.BadRequest},
		{"truncated", `{"username":"a"`, "application/json", apierr.BadRequest},
		{"unknown field", `{"user":"a"}`, "application/json", apierr.BadRequest},
		{"wrong type", `{"username":5}`, "application/json", apierr.BadRequest},
		{"two objects", `{"username":"a"}{"username":"b"}`, "application/json", apierr.BadRequest},
		{"too large", `{"username":"` + strings.Repeat("x", 200) + `"}`, "application/json", apierr.PayloadTooLarge},
		{"wrong content type", `{"username":"a"}`, "text/plain", apierr.UnsupportedMedia},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ctype)
			var v login
			err := Decode(httptest.NewRecorder(), r, &v, 128)
			if got := codeOrEmpty(err); got != tt.want {
				t.Fatalf("Decode(%q) code = %q, want %q (err %v)", tt.body, got, tt.want, err)
			}
		})
	}
}

func codeOrEmpty(err error) apierr.Code {
	if err == nil {
		return ""
	}
	return apierr.CodeOf(err)
}

func TestWriteErrorHidesInternalCause(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest("GET", "/", nil), nil, errors.New("dial tcp 10.0.0.1:5432: secret"))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("body leaks cause: %s", rec.Body)
	}
	var b ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Code != apierr.Internal {
		t.Fatalf("body = %s, want code internal", rec.Body)
	}
}

func TestBearerToken(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{"Bearer abc", "abc"}, {"bearer  abc ", "abc"}, {"Basic abc", ""}, {"", ""}, {"Bearer ", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", tt.header)
		got, err := BearerToken(r)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	rec := httptest.NewRecorder()
	MethodNotAllowed(http.MethodGet, http.MethodHead)(rec, httptest.NewRequest(http.MethodPost, "/v1/x", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("got %d Allow %q, want 405 Allow \"GET, HEAD\"", rec.Code, rec.Header().Get("Allow"))
	}
	var b ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Code != apierr.MethodNotAllowed {
		t.Fatalf("body = %s, want code method_not_allowed", rec.Body)
	}
}

type verifyFunc func(string) (string, string, error)

func (f verifyFunc) VerifyPlayer(tok string) (string, string, error) { return f(tok) }

func TestCellPlayer(t *testing.T) {
	v := verifyFunc(func(tok string) (string, string, error) {
		switch tok {
		case "here":
			return "p1", "eu-west", nil
		case "nohome":
			return "p2", "", nil
		case "away":
			return "p3", "us-east", nil
		}
		return "", "", apierr.New(apierr.InvalidToken, "bad token")
	})
	for _, tt := range []struct {
		auth, player string
		code         apierr.Code
	}{
		{"Bearer here", "p1", ""},
		{"Bearer nohome", "p2", ""},
		{"Bearer away", "", apierr.PermissionDenied},
		{"Bearer forged", "", apierr.InvalidToken},
		{"", "", apierr.Unauthenticated},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		p, err := CellPlayer(r, v, "eu-west")
		if p != tt.player || (tt.code == "") != (err == nil) || (err != nil && apierr.CodeOf(err) != tt.code) {
			t.Errorf("CellPlayer(%q) = %q, %v; want %q, code %q", tt.auth, p, err, tt.player, tt.code)
		}
	}
}
