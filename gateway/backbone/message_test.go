package backbone

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

// hexMsg builds wire bytes from spaced hex, for readable cases.
func hexMsg(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseCases are shared by the table test and the fuzz seeds.
var parseCases = []struct {
	name string
	wire string // hex
	want Message
	err  error // nil: want, ErrShort or a decode error
}{
	{"hello", "0000000c 01 00000000 7b2276223a317d", Message{Kind: KindHello, Body: []byte(`{"v":1}`)}, nil},
	{"open session 7", "00000007 03 00000007 7b7d", Message{Kind: KindOpen, Session: 7, Body: []byte(`{}`)}, nil},
	{"data with a frame", "00000011 04 00000001 0000000801000002 00000002", Message{Kind: KindData, Session: 1, Body: mustHex("000000080100000200000002")}, nil},
	{"empty data", "00000005 04 ffffffff", Message{Kind: KindData, Session: 0xffffffff}, nil},
	{"close without body", "00000005 05 00000003", Message{Kind: KindClose, Session: 3}, nil},
	{"ping", "0000000d 06 00000000 0102030405060708", Message{Kind: KindPing, Body: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, nil},
	{"pong", "00000005 07 00000000", Message{Kind: KindPong}, nil},
	{"goaway", "00000005 08 00000000", Message{Kind: KindGoAway}, nil},
	{"error", "00000007 09 00000000 7b7d", Message{Kind: KindError, Body: []byte(`{}`)}, nil},
	{"welcome", "00000007 02 00000000 7b7d", Message{Kind: KindWelcome, Body: []byte(`{}`)}, nil},
	{"window", "00000009 0a 00000002 00040000", Message{Kind: KindWindow, Session: 2, Body: []byte{0, 4, 0, 0}}, nil},

	{"empty", "", Message{}, ErrShort},
	{"partial length", "000000", Message{}, ErrShort},
	{"partial header", "00000005 04 0000", Message{}, ErrShort},
	{"partial body", "00000009 04 00000001 0000", Message{}, ErrShort},
	{"length 0", "00000000", Message{}, ErrBadLength},
	{"length 4", "00000004 04 000000", Message{}, ErrBadLength},
	{"unknown kind 0", "00000005 00 00000000", Message{}, ErrUnknownKind},
	{"unknown kind 0x0b", "00000005 0b 00000001", Message{}, ErrUnknownKind},
	{"data on session 0", "00000005 04 00000000", Message{}, ErrBadSession},
	{"ping on a session", "00000005 06 00000001", Message{}, ErrBadSession},
	{"window on session 0", "00000009 0a 00000000 00000001", Message{}, ErrBadSession},
	{"control body over 8 KiB", "00002006 01 00000000", Message{}, ErrTooLarge},
	{"data body over 1 MiB", "00100006 04 00000001", Message{}, ErrTooLarge},
	{"length 0xffffffff", "ffffffff 04 00000001", Message{}, ErrTooLarge},
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestParse(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			wire := hexMsg(t, tt.wire)
			m, n, err := Parse(wire)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse: got err %v, want %v", err, tt.err)
			}
			if err != nil {
				if tt.err != ErrShort && apierr.CodeOf(err) != apierr.BadFrame && apierr.CodeOf(err) != apierr.FrameTooLarge {
					t.Errorf("decode error %v carries code %s, want bad_frame or frame_too_large", err, apierr.CodeOf(err))
				}
				return
			}
			if n != len(wire) {
				t.Errorf("consumed %d of %d bytes", n, len(wire))
			}
			if m.Kind != tt.want.Kind || m.Session != tt.want.Session || !bytes.Equal(m.Body, tt.want.Body) {
				t.Errorf("got %+v, want %+v", m, tt.want)
			}
			if enc := Append(nil, m); !bytes.Equal(enc, wire) {
				t.Errorf("Append: got %x, want %x", enc, wire)
			}
		})
	}
}

func TestReaderAgreesWithParse(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			wire := hexMsg(t, tt.wire)
			m, err := NewReader(bytes.NewReader(wire)).Next()
			switch {
			case tt.err == nil:
				if err != nil || m.Kind != tt.want.Kind || m.Session != tt.want.Session || !bytes.Equal(m.Body, tt.want.Body) {
					t.Fatalf("Next: got %+v, %v; want %+v", m, err, tt.want)
				}
			case tt.err == ErrShort:
				want := io.ErrUnexpectedEOF
				if len(wire) == 0 {
					want = io.EOF
				}
				if !errors.Is(err, want) {
					t.Fatalf("Next on a truncated stream: got %v, want %v", err, want)
				}
			default:
				if !errors.Is(err, tt.err) {
					t.Fatalf("Next: got %v, want %v", err, tt.err)
				}
			}
		})
	}
}

func TestReaderSequence(t *testing.T) {
	var wire []byte
	want := []Message{
		{Kind: KindOpen, Session: 1, Body: []byte(`{"transport":"tcp"}`)},
		{Kind: KindData, Session: 1, Body: bytes.Repeat([]byte{0xab}, 70_000)}, // larger than the reader's buffer
		{Kind: KindData, Session: 2},
		{Kind: KindClose, Session: 1},
	}
	for _, m := range want {
		wire = Append(wire, m)
	}
	r := NewReader(bytes.NewReader(wire))
	for i, w := range want {
		got, err := r.Next()
		if err != nil || got.Kind != w.Kind || got.Session != w.Session || !bytes.Equal(got.Body, w.Body) {
			t.Fatalf("message %d: got %v/%d/%d bytes, %v; want %v/%d/%d bytes", i, got.Kind, got.Session, len(got.Body), err, w.Kind, w.Session, len(w.Body))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last message: got %v, want io.EOF", err)
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		n := k.String()
		if strings.HasPrefix(n, "kind(") || seen[n] {
			t.Errorf("kind 0x%02x: name %q missing or repeated", uint8(k), n)
		}
		seen[n] = true
	}
	if got := Kind(0x42).String(); got != "kind(0x42)" {
		t.Errorf("unknown kind: got %q", got)
	}
}

// TestDocListsEveryKind keeps the kind table of docs/protocol.md ("Edge
// backbone") in step with Kinds.
func TestDocListsEveryKind(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // "0x04" → name
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 2 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "0x") {
			continue
		}
		rows[strings.TrimSpace(cells[0])] = strings.Trim(strings.TrimSpace(cells[1]), "`")
	}
	for _, k := range Kinds() {
		hex := fmt.Sprintf("0x%02x", uint8(k))
		name, ok := rows[hex]
		switch {
		case !ok:
			t.Errorf("docs/protocol.md: kind %s (%s) has no row", hex, k)
		case name != k.String():
			t.Errorf("docs/protocol.md: kind %s is named %q, want %q", hex, name, k)
		}
		delete(rows, hex)
	}
	for hex := range rows {
		t.Errorf("docs/protocol.md: kind %s is not in Kinds()", hex)
	}
}
