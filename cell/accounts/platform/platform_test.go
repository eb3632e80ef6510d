package platform

import (
	"errors"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		flags Flags
		want  string
	}{
		{0, ""},
		{FlagVACBanned, "vac_banned"},
		{FlagFamilyShared, "family_shared"},
		{FlagVACBanned | FlagFamilyShared, "vac_banned|family_shared"},
		{FlagVACBanned | 1<<7, "vac_banned|unknown"},
	}
	for _, tt := range tests {
		if got := tt.flags.String(); got != tt.want {
			t.Errorf("Flags(%d).String() = %q, want %q", tt.flags, got, tt.want)
		}
	}
	f := FlagVACBanned | FlagFamilyShared
	if !f.Has(FlagVACBanned) || !f.Has(FlagVACBanned|FlagFamilyShared) {
		t.Errorf("%v.Has: got false for a set flag, want true", f)
	}
	if FlagVACBanned.Has(FlagFamilyShared) {
		t.Errorf("vac_banned.Has(family_shared) = true, want false")
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("steam said: errorcode 101 Invalid ticket")
	tests := []struct {
		name      string
		err       error
		code      apierr.Code
		msg       string
		retryable bool
	}{
		{"rejected", Rejected("op", cause), apierr.InvalidCredentials, "platform ticket rejected", false},
		{"banned", Banned("op", cause), apierr.PermissionDenied, "account is banned from this game", false},
		{"unavailable", Unavailable("op", cause), apierr.Unavailable, "platform login is unavailable, retry later", true},
		{"bad ticket", BadTicket("op", "steam ticket must be hex encoded"), apierr.BadRequest, "steam ticket must be hex encoded", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apierr.CodeOf(tt.err); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
			if got := apierr.MessageOf(tt.err); got != tt.msg {
				t.Errorf("message = %q, want %q", got, tt.msg)
			}
			if got := apierr.CodeOf(tt.err).Retryable(); got != tt.retryable {
				t.Errorf("retryable = %v, want %v", got, tt.retryable)
			}
			if tt.name != "bad ticket" && !errors.Is(tt.err, cause) {
				t.Errorf("errors.Is(err, cause) = false, want the cause kept for logs")
			}
		})
	}
}
