package accounts

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Ops returns the gateway opcode handlers of the accounts service.
func (s *Service) Ops() protocol.Handlers {
	return protocol.Handlers{
		protocol.OpAccountsMe: s.opMe,
	}
}

// opMe answers protocol.OpAccountsMe with the caller's accountsapi.Me. The
// gateway has already authenticated the session, so the caller is trusted.
func (s *Service) opMe(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
	if err := emptyObject(payload); err != nil {
		return nil, err
	}
	if c.PlayerID == "" {
		return nil, apierr.New(apierr.NotAuthenticated, "request has no authenticated player")
	}
	me, err := s.me(ctx, c.PlayerID)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(me)
	if err != nil {
		return nil, apierr.Wrap("accounts.opMe", apierr.Internal, "", err)
	}
	return b, nil
}

// emptyObject accepts an empty payload or a JSON object with no members,
// the two ways a client can send "no arguments".
func emptyObject(payload []byte) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return nil
	}
	if p[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(p))
		dec.DisallowUnknownFields()
		var v struct{}
		if err := dec.Decode(&v); err == nil && !dec.More() && dec.InputOffset() == int64(len(p)) {
			return nil
		}
	}
	return apierr.New(apierr.BadRequest, "payload must be empty or {}")
}
