package protocol

import (
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Slot string `json:"slot"`
		N    int    `json:"n"`
	}
	tests := []struct {
		payload string
		want    req
		bad     bool
	}{
		{``, req{}, false},
		{`  `, req{}, false},
		{`{}`, req{}, false},
		{`{"slot":"head","n":2}`, req{"head", 2}, false},
		{`{"slot":"head"} `, req{Slot: "head"}, false},
		{`[]`, req{}, true},
		{`"x"`, req{}, true},
		{`{"slot":1}`, req{}, true},
		{`{"other":1}`, req{}, true},
		{`{"slot":"a"}{"slot":"b"}`, req{}, true},
		{`{"slot":"a"} x`, req{}, true},
		{`{"slot":`, req{}, true},
	}
	for _, tt := range tests {
		var got req
		err := DecodeJSON([]byte(tt.payload), &got)
		if tt.bad {
			if apierr.CodeOf(err) != apierr.BadRequest {
				t.Errorf("DecodeJSON(%q) = %v, want bad_request", tt.payload, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DecodeJSON(%q) = %+v, %v; want %+v, nil", tt.payload, got, err, tt.want)
		}
	}
}
