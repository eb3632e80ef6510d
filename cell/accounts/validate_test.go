package accounts

import (
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string // want "" means rejected with bad_request
		msg      string // substring of the error message
	}{
		{"alice", "alice", ""},
		{"Alice.B-9_", "alice.b-9_", ""},
		{"abc", "abc", ""},
		{strings.Repeat("a", 32), strings.Repeat("a", 32), ""},
		{"", "", "required"},
		{"ab", "", "3 to 32"},
		{strings.Repeat("a", 33), "", "3 to 32"},
		{"al ice", "", "may only contain"},
		{" alice", "", "may only contain"},
		{"alice\n", "", "may only contain"},
		{"ali\x00ce", "", "may only contain"},
		{"ålice", "", "may only contain"},
		{"\u212Aate", "", "may only contain"}, // Kelvin sign lower-cases to ASCII k
		{"ａｌｉｃｅ", "", "may only contain"},     // fullwidth
		{"bob🎮", "", "may only contain"},
		{"x'); DROP TABLE players;--", "", "may only contain"},
		{"a@b.c", "", "may only contain"},
		{"bad\xffutf8", "", "may only contain"},
	}
	for _, tt := range tests {
		got, err := normalizeUsername(tt.in)
		if tt.want != "" {
			if got != tt.want || err != nil {
				t.Errorf("normalizeUsername(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		if apierr.CodeOf(err) != apierr.BadRequest || !strings.Contains(apierr.MessageOf(err), tt.msg) {
			t.Errorf("normalizeUsername(%q) = %q, %v; want bad_request mentioning %q", tt.in, got, err, tt.msg)
		}
	}
}

func TestCheckPasswords(t *testing.T) {
	tests := []struct {
		pw        string
		newOK     bool
		loginOK   bool
		msgSubstr string
	}{
		{"password", true, true, ""},
		{"pässwörd🎮", true, true, ""},
		{strings.Repeat("x", 128), true, true, ""},
		{strings.Repeat("é", 64), true, true, ""}, // 128 bytes
		{"short", false, true, "8 to 128"},
		{"", false, false, "required"},
		{strings.Repeat("x", 129), false, false, "128"},
		{strings.Repeat("é", 64) + "x", false, false, "128"}, // 129 bytes, 65 runes
		{"password\x00x", false, false, "NUL"},
		{"password\xff", false, false, "UTF-8"},
	}
	for _, tt := range tests {
		err := checkNewPassword(tt.pw)
		if (err == nil) != tt.newOK || (err != nil && (apierr.CodeOf(err) != apierr.BadRequest || !strings.Contains(apierr.MessageOf(err), tt.msgSubstr))) {
			t.Errorf("checkNewPassword(%q) = %v, want ok=%v (message with %q)", tt.pw, err, tt.newOK, tt.msgSubstr)
		}
		err = checkLoginPassword(tt.pw)
		if (err == nil) != tt.loginOK || (err != nil && apierr.CodeOf(err) != apierr.BadRequest) {
			t.Errorf("checkLoginPassword(%q) = %v, want ok=%v", tt.pw, err, tt.loginOK)
		}
	}
}

func FuzzNormalizeUsername(f *testing.F) {
	for _, s := range []string{"alice", "Alice.B-9_", "\u212Aate", "x'); DROP TABLE players;--", "ab", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := normalizeUsername(in)
		if err != nil {
			if apierr.CodeOf(err) != apierr.BadRequest {
				t.Fatalf("normalizeUsername(%q) error code = %q, want bad_request", in, apierr.CodeOf(err))
			}
			return
		}
		if len(got) < 3 || len(got) > 32 || !strings.EqualFold(got, in) {
			t.Fatalf("normalizeUsername(%q) = %q: wrong length or not the input lower-cased", in, got)
		}
		for _, c := range []byte(got) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
				t.Fatalf("normalizeUsername(%q) = %q holds %q", in, got, c)
			}
		}
		if again, err := normalizeUsername(got); again != got || err != nil {
			t.Fatalf("normalizeUsername is not idempotent on %q: %q, %v", got, again, err)
		}
	})
}
