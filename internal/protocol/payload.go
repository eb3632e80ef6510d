package protocol

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// DecodeJSON decodes a request payload into v as strictly as the HTTP APIs
// decode bodies: one JSON object, no unknown fields, nothing after it. An
// empty payload leaves v as it is, the way clients send "no arguments".
// Every failure is apierr.BadRequest naming the problem.
func DecodeJSON(payload []byte, v any) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return nil
	}
	if p[0] != '{' {
		return apierr.New(apierr.BadRequest, "payload must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierr.Wrap("protocol.DecodeJSON", apierr.BadRequest, "payload: "+strings.TrimPrefix(err.Error(), "json: "), err)
	}
	if dec.More() || dec.InputOffset() != int64(len(p)) {
		return apierr.New(apierr.BadRequest, "payload must hold a single JSON object")
	}
	return nil
}
