package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestCodeOfAndMessage(t *testing.T) {
	cause := errors.New("pq: relation players does not exist")
	tests := []struct {
		name     string
		err      error
		wantCode Code
		wantMsg  string
		wantHTTP int
	}{
		{"plain error hides cause", cause, Internal, "internal error", 500},
		{"coded", New(BadRequest, "username is required"), BadRequest, "username is required", 400},
		{"wrapped twice", fmt.Errorf("login: %w", Wrap("accounts.Login", InvalidCredentials, "", cause)), InvalidCredentials, "invalid_credentials", 401},
		{"rate limited", New(RateLimited, ""), RateLimited, "too many requests", http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.wantCode {
				t.Errorf("CodeOf = %q, want %q", got, tt.wantCode)
			}
			if got := MessageOf(tt.err); got != tt.wantMsg {
				t.Errorf("MessageOf = %q, want %q", got, tt.wantMsg)
			}
			if got := CodeOf(tt.err).HTTPStatus(); got != tt.wantHTTP {
				t.Errorf("HTTPStatus = %d, want %d", got, tt.wantHTTP)
			}
		})
	}
}

func TestWrapKeepsCause(t *testing.T) {
	cause := errors.New("boom")
	err := Wrap("op", Unavailable, "", cause)
	if !errors.Is(err, cause) {
		t.Fatalf("errors.Is(%v, cause) = false, want true", err)
	}
}

func TestEveryCodeHasAClientStatus(t *testing.T) {
	for _, c := range Codes() {
		if s := c.HTTPStatus(); s < 400 || s > 599 {
			t.Errorf("code %q maps to HTTP %d, want a 4xx/5xx", c, s)
		}
	}
}
