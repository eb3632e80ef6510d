package protocol

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func frameBytes(op Opcode, id uint32, payload string) []byte {
	return Encode(Frame{Header: Header{Opcode: op, RequestID: id}, Payload: []byte(payload)})
}

func TestReaderEOF(t *testing.T) {
	one := frameBytes(OpEcho, 1, "hello")
	tests := []struct {
		name   string
		input  []byte
		frames int   // frames decoded before the error
		want   error // error after them
	}{
		{"empty stream", nil, 0, io.EOF},
		{"between frames", bytes.Repeat(one, 2), 2, io.EOF},
		{"inside length", append(append([]byte{}, one...), one[:2]...), 1, io.ErrUnexpectedEOF},
		{"after length", one[:LengthSize], 0, io.ErrUnexpectedEOF},
		{"inside header", one[:HeaderSize-1], 0, io.ErrUnexpectedEOF},
		{"after header", one[:HeaderSize], 0, io.ErrUnexpectedEOF},
		{"inside payload", one[:len(one)-1], 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input), 0)
			for i := 0; i < tt.frames; i++ {
				f, err := r.Next()
				if err != nil {
					t.Fatalf("frame %d: %v, want a frame", i, err)
				}
				if string(f.Payload) != "hello" {
					t.Fatalf("frame %d payload = %q, want %q", i, f.Payload, "hello")
				}
			}
			if _, err := r.Next(); err != tt.want {
				t.Fatalf("Next = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	one := frameBytes(OpEcho, 1, "hello")
	tests := []struct {
		name string
		cut  int
	}{
		{"before frame", 0},
		{"inside header", 6},
		{"inside payload", len(one) - 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := io.MultiReader(bytes.NewReader(one[:tt.cut]), iotest.ErrReader(boom))
			_, err := NewReader(src, 0).Next()
			if !errors.Is(err, boom) {
				t.Fatalf("Next = %v, want %v", err, boom)
			}
		})
	}
}

func TestManyFramesInOneBuffer(t *testing.T) {
	var buf []byte
	var want []Frame
	for i := range 100 {
		f := Frame{Header: Header{Version: Version, Opcode: OpEcho, RequestID: uint32(i + 1)}, Payload: bytes.Repeat([]byte{byte(i)}, i)}
		if i%10 == 0 {
			f.Flags = FlagResponse
		}
		want = append(want, f)
		buf = AppendFrame(buf, f)
	}

	// Parse walks the buffer frame by frame, as an event-loop gateway does.
	rest := buf
	for i, w := range want {
		f, n, err := Parse(rest, 0)
		if err != nil {
			t.Fatalf("Parse frame %d: %v", i, err)
		}
		if f.Header != w.Header || !bytes.Equal(f.Payload, w.Payload) {
			t.Fatalf("Parse frame %d = %+v, want %+v", i, f.Header, w.Header)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left after the last frame, want 0", len(rest))
	}

	// A Reader over the same bytes, delivered in awkward chunk sizes.
	r := NewReader(iotest.HalfReader(bytes.NewReader(buf)), 0)
	for i, w := range want {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("Reader frame %d: %v", i, err)
		}
		if f.Header != w.Header || !bytes.Equal(f.Payload, w.Payload) {
			t.Fatalf("Reader frame %d = %+v, want %+v", i, f.Header, w.Header)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the last frame = %v, want io.EOF", err)
	}
}

// The Reader reuses one payload buffer: a payload is valid until the next
// call, and callers that keep it must copy. This test pins that contract so a
// change to it is deliberate.
func TestReaderBufferReuse(t *testing.T) {
	stream := bytes.Join([][]byte{
		frameBytes(OpEcho, 1, "aaaaaaaa"),
		frameBytes(OpEcho, 2, "bbbb"),
		frameBytes(OpEcho, 3, "cccccccccccccccc"),
	}, nil)
	r := NewReader(bytes.NewReader(stream), 0)

	first, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	kept := append([]byte(nil), first.Payload...)
	second, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if &first.Payload[0] != &second.Payload[0] {
		t.Errorf("second payload uses a new buffer, want the first frame's buffer reused")
	}
	if got := string(first.Payload[:4]); got != "bbbb" {
		t.Errorf("first payload after the next read starts %q, want %q (overwritten)", got, "bbbb")
	}
	if got := string(kept); got != "aaaaaaaa" {
		t.Errorf("copied payload = %q, want %q", got, "aaaaaaaa")
	}
	third, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if string(third.Payload) != "cccccccccccccccc" {
		t.Errorf("third payload = %q, want 16 c's", third.Payload)
	}
	if got := cap(r.buf); got != 16 {
		t.Errorf("buffer capacity after a 16-byte payload = %d, want 16 (grows to the largest frame only)", got)
	}
}

// Parse's payload aliases the input but is capped at the frame's end, so an
// append to one frame's payload cannot overwrite the next frame.
func TestParsePayloadAliasesInputButNotNextFrame(t *testing.T) {
	buf := append(frameBytes(OpEcho, 1, "ab"), frameBytes(OpEcho, 2, "cd")...)
	f, n, err := Parse(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf[HeaderSize] = 'X'
	if got := string(f.Payload); got != "Xb" {
		t.Errorf("payload after changing the input = %q, want %q (aliases the input)", got, "Xb")
	}
	_ = append(f.Payload, "ZZZZZZZZZZZZZZZZ"...)
	g, _, err := Parse(buf[n:], 0)
	if err != nil {
		t.Fatalf("second frame after append to first payload: %v", err)
	}
	if string(g.Payload) != "cd" || g.RequestID != 2 {
		t.Errorf("second frame = id %d %q, want id 2 %q", g.RequestID, g.Payload, "cd")
	}
}

func TestClampMaxFrame(t *testing.T) {
	tests := []struct{ in, want int }{
		{-1 << 40, DefaultMaxFrame},
		{-1, DefaultMaxFrame},
		{0, DefaultMaxFrame},
		{1, HeaderSize},
		{HeaderSize - 1, HeaderSize},
		{HeaderSize, HeaderSize},
		{4096, 4096},
		{DefaultMaxFrame, DefaultMaxFrame},
		{HardMaxFrame, HardMaxFrame},
		{HardMaxFrame + 1, HardMaxFrame},
		{1 << 40, HardMaxFrame},
	}
	for _, tt := range tests {
		if got := ClampMaxFrame(tt.in); got != tt.want {
			t.Errorf("ClampMaxFrame(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// Parse and NewReader normalise max the same way, so a gateway that parses
// its own buffers and one that uses a Reader accept the same frames.
func TestParseClampsMax(t *testing.T) {
	big := Encode(Frame{Header: Header{Opcode: OpEcho, RequestID: 1}, Payload: make([]byte, DefaultMaxFrame)})
	tests := []struct {
		name string
		max  int
		want error
	}{
		{"zero means default", 0, ErrFrameTooLarge},
		{"negative means default", -1, ErrFrameTooLarge},
		{"explicit larger max", 2 * DefaultMaxFrame, nil},
		{"above hard max", 1 << 40, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, perr := Parse(big, tt.max)
			_, rerr := NewReader(bytes.NewReader(big), tt.max).Next()
			if perr != tt.want || rerr != tt.want {
				t.Fatalf("Parse = %v, Reader = %v, want %v", perr, rerr, tt.want)
			}
		})
	}
	huge := []byte{0x00, 0x10, 0x00, 0x00} // length 1 MiB: frame is 4 bytes over the hard max
	if _, _, err := Parse(huge, 1<<40); err != ErrFrameTooLarge {
		t.Fatalf("Parse of a frame over HardMaxFrame with max 1<<40 = %v, want ErrFrameTooLarge", err)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestWriteFrame(t *testing.T) {
	f := Frame{Header: Header{Flags: FlagResponse, Opcode: OpAccountsMe, RequestID: 42}, Payload: []byte(`{}`)}
	var w countingWriter
	if err := WriteFrame(&w, f); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("WriteFrame made %d Write calls, want 1 (frames must not interleave)", w.writes)
	}
	if !bytes.Equal(w.Bytes(), Encode(f)) {
		t.Errorf("WriteFrame wrote %x, want %x", w.Bytes(), Encode(f))
	}

	tooBig := Frame{Header: Header{Opcode: OpEcho}, Payload: make([]byte, HardMaxFrame-HeaderSize+1)}
	w = countingWriter{}
	if err := WriteFrame(&w, tooBig); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("WriteFrame of %d bytes = %v, want ErrFrameTooLarge", tooBig.Size(), err)
	}
	if w.writes != 0 {
		t.Errorf("WriteFrame of a too-large frame wrote %d times, want 0", w.writes)
	}
}

func TestAppendFrameDefaultsVersion(t *testing.T) {
	b := AppendFrame([]byte("prefix"), Frame{Header: Header{Opcode: OpPing, RequestID: 7}})
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatalf("AppendFrame dropped the prefix: %x", b)
	}
	f, _, err := Parse(b[len("prefix"):], 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != Version {
		t.Errorf("version = %d, want %d when the frame leaves it zero", f.Version, Version)
	}
}

func TestOpcodeTable(t *testing.T) {
	ops := Ops()
	if len(ops) == 0 {
		t.Fatal("Ops() is empty")
	}
	names := map[string]bool{}
	for i, oi := range ops {
		if i > 0 && oi.Op <= ops[i-1].Op {
			t.Errorf("Ops()[%d] = %s after %s, want strictly increasing", i, oi.Op.Hex(), ops[i-1].Op.Hex())
		}
		if oi.Name == "" || oi.Name == "unknown" || names[oi.Name] {
			t.Errorf("opcode %s has name %q, want a unique, non-empty name", oi.Op.Hex(), oi.Name)
		}
		names[oi.Name] = true
		if oi.Service == "" {
			t.Errorf("opcode %s has no service", oi.Op.Hex())
		}
		if got, ok := Lookup(oi.Op); !ok || got != oi {
			t.Errorf("Lookup(%s) = %+v, %v, want %+v, true", oi.Op.Hex(), got, ok, oi)
		}
		if got := oi.Op.String(); got != oi.Name {
			t.Errorf("String(%s) = %q, want %q", oi.Op.Hex(), got, oi.Name)
		}
	}
	ops[0].Name = "mutated"
	if Ops()[0].Name == "mutated" {
		t.Error("Ops() returned the table itself, want a copy")
	}
	if got := Opcode(0xBEEF).String(); got != "unknown" {
		t.Errorf("String(0xBEEF) = %q, want %q", got, "unknown")
	}
	if got := Opcode(0x0101).Hex(); got != "0x0101" {
		t.Errorf("Hex = %q, want %q", got, "0x0101")
	}
	if !strings.HasPrefix(OpAccountsMe.String(), "accounts.") {
		t.Errorf("OpAccountsMe = %q, want the accounts. prefix", OpAccountsMe)
	}
}
