package backbone

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the decoder: it must never panic,
// never claim more bytes than it was given, reject what it rejects with a
// coded error, and re-encode every message it accepts to the same bytes.
// The stream Reader must agree with Parse on the first message.
func FuzzParse(f *testing.F) {
	for _, tt := range parseCases {
		f.Add(mustHex(tt.wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := Parse(b)
		rm, rerr := NewReader(bytes.NewReader(b)).Next()
		switch {
		case err == nil:
			if n < HeaderSize || n > len(b) {
				t.Fatalf("consumed %d of %d bytes", n, len(b))
			}
			if len(m.Body) > maxBody(m.Kind) {
				t.Fatalf("accepted a %s body of %d bytes, limit %d", m.Kind, len(m.Body), maxBody(m.Kind))
			}
			if enc := Append(nil, m); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoding %x gave %x", b[:n], enc)
			}
			if rerr != nil || rm.Kind != m.Kind || rm.Session != m.Session || !bytes.Equal(rm.Body, m.Body) {
				t.Fatalf("Reader disagrees: %+v, %v; Parse %+v", rm, rerr, m)
			}
		case errors.Is(err, ErrShort):
			if rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				t.Fatalf("Parse wants more bytes, Reader says %v", rerr)
			}
		default:
			if n != 0 {
				t.Fatalf("error %v after consuming %d bytes", err, n)
			}
			if rerr == nil || errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("Parse rejects (%v), Reader says %v", err, rerr)
			}
		}
	})
}
