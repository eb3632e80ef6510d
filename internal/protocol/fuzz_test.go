package protocol

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// fuzzSeed is one starting input for both fuzz targets.
type fuzzSeed struct {
	name string
	b    []byte
	max  int
}

// fuzzSeeds returns the table seeds: the golden vectors plus inputs aimed at
// the decoder's boundaries (max normalisation, several frames in a row, a
// valid frame followed by garbage).
func fuzzSeeds(t testing.TB) []fuzzSeed {
	t.Helper()
	var seeds []fuzzSeed
	for _, v := range vectorInputs(t) {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("vector %s: hex: %v", v.Name, err)
		}
		seeds = append(seeds, fuzzSeed{"vector-" + v.Name, b, v.maxFrame()})
	}
	ping := Encode(Frame{Header: Header{Opcode: OpPing, RequestID: 1}})
	echo := Encode(Frame{Header: Header{Opcode: OpEcho, RequestID: 2}, Payload: []byte("hello")})
	push := Encode(Frame{Header: Header{Opcode: OpPush}, Payload: []byte(`{"topic":"t"}`)})
	stream := bytes.Join([][]byte{ping, echo, push}, nil)
	seeds = append(seeds,
		fuzzSeed{"stream-three-frames", stream, 0},
		fuzzSeed{"stream-frame-then-truncated", append(append([]byte{}, ping...), echo[:7]...), 0},
		fuzzSeed{"stream-frame-then-bad-version", append(append([]byte{}, echo...), 0, 0, 0, 8, 9, 0, 0, 2, 0, 0, 0, 1), 0},
		fuzzSeed{"max-negative", echo, -1},
		fuzzSeed{"max-below-header", ping, 3},
		fuzzSeed{"max-exact-ping", ping, HeaderSize},
		fuzzSeed{"max-above-hard", []byte{0x00, 0x10, 0x00, 0x00, 1, 0, 0, 2, 0, 0, 0, 1}, HardMaxFrame * 4},
		fuzzSeed{"length-min-body-minus-one", []byte{0, 0, 0, 7}, 0},
	)
	return seeds
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.b, s.max)
	}
}

// FuzzParse checks that Parse never panics, never claims more bytes than it
// was given, and that whatever it accepts re-encodes to the same bytes.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		fr, n, err := Parse(b, max)
		limit := ClampMaxFrame(max)
		if err != nil {
			if n != 0 {
				t.Fatalf("Parse error %v with n = %d, want n = 0", err, n)
			}
			if err == ErrShort {
				// A short answer for a buffer already at the limit would let
				// a peer make the reader buffer past max.
				if len(b) >= limit {
					t.Fatalf("Parse(%d bytes, max %d) = ErrShort, want a frame or an error", len(b), limit)
				}
				return
			}
			if codeOf(err) == "" {
				t.Fatalf("Parse error %v carries no apierr code", err)
			}
			// Errors are final: more bytes never turn one into a frame.
			if _, _, err2 := Parse(append(b[:len(b):len(b)], 0xAA), max); err2 != err {
				t.Fatalf("Parse with one more byte = %v, want the same error %v", err2, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("Parse consumed %d of %d bytes", n, len(b))
		}
		if n != fr.Size() {
			t.Fatalf("Parse consumed %d bytes, frame.Size() = %d", n, fr.Size())
		}
		if n > limit {
			t.Fatalf("Parse accepted a %d-byte frame with max %d", n, limit)
		}
		if got := AppendFrame(nil, fr); !bytes.Equal(got, b[:n]) {
			t.Fatalf("AppendFrame(Parse(b)) = %x, want %x", got, b[:n])
		}
		// Incremental decoding: every strict prefix of a valid frame asks
		// for more bytes, never fails.
		for k := 0; k < n; k++ {
			if _, _, err := Parse(b[:k], max); err != ErrShort {
				t.Fatalf("Parse(first %d of %d bytes) = %v, want ErrShort", k, n, err)
			}
		}
	})
}

// FuzzReader decodes arbitrary bytes as a stream and checks every step
// against Parse: same frames, and the same final error (ErrShort meaning
// io.EOF or io.ErrUnexpectedEOF at the end of a stream).
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.b, s.max, false)
	}
	f.Add(bytes.Repeat(Encode(Frame{Header: Header{Opcode: OpEcho, RequestID: 9}, Payload: []byte("abc")}), 3), 0, true)
	f.Fuzz(func(t *testing.T, b []byte, max int, oneByte bool) {
		var src io.Reader = bytes.NewReader(b)
		if oneByte {
			// Reads that return one byte at a time exercise every partial
			// read inside the length, header and payload.
			src = iotest.OneByteReader(src)
		}
		r := NewReader(src, max)
		rest := b
		for i := 0; ; i++ {
			got, err := r.Next()
			if c := cap(r.buf); c > r.max-HeaderSize {
				t.Fatalf("frame %d: reader buffer grew to %d bytes, max payload is %d", i, c, r.max-HeaderSize)
			}
			want, n, perr := Parse(rest, max)
			if err == nil {
				if perr != nil {
					t.Fatalf("frame %d: Reader decoded %+v, Parse failed with %v", i, got.Header, perr)
				}
				if got.Header != want.Header || !bytes.Equal(got.Payload, want.Payload) {
					t.Fatalf("frame %d: Reader = %+v %x, Parse = %+v %x", i, got.Header, got.Payload, want.Header, want.Payload)
				}
				rest = rest[n:]
				continue
			}
			switch {
			case err == io.EOF:
				if len(rest) != 0 {
					t.Fatalf("frame %d: Reader io.EOF with %d bytes left", i, len(rest))
				}
			case err == io.ErrUnexpectedEOF:
				if perr != ErrShort || len(rest) == 0 {
					t.Fatalf("frame %d: Reader io.ErrUnexpectedEOF, Parse %v with %d bytes left", i, perr, len(rest))
				}
			default:
				if err != perr {
					t.Fatalf("frame %d: Reader error %v, Parse error %v", i, err, perr)
				}
			}
			return
		}
	})
}

// seedCorpusFile is the "go test fuzz v1" encoding of one seed.
func seedCorpusFile(args ...any) []byte {
	var buf bytes.Buffer
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&buf, "[]byte(%q)\n", v)
		case int:
			fmt.Fprintf(&buf, "int(%d)\n", v)
		case bool:
			fmt.Fprintf(&buf, "bool(%t)\n", v)
		default:
			panic(fmt.Sprintf("unsupported fuzz argument %T", a))
		}
	}
	return buf.Bytes()
}

// TestSeedCorpus keeps the committed corpus under testdata/fuzz in step with
// the seed table, so plain `go test` (which runs the corpus, not f.Add
// seeds only) covers every seed, and a CI without the table still replays
// it. -update rewrites it; files the fuzzer added (crashers) are left alone.
func TestSeedCorpus(t *testing.T) {
	targets := map[string]func(s fuzzSeed) []byte{
		"FuzzParse":  func(s fuzzSeed) []byte { return seedCorpusFile(s.b, s.max) },
		"FuzzReader": func(s fuzzSeed) []byte { return seedCorpusFile(s.b, s.max, true) },
	}
	for target, encode := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range fuzzSeeds(t) {
			path := filepath.Join(dir, "seed-"+s.name)
			want := encode(s)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed corpus: %v (run go test -run TestSeedCorpus -update)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the seed table (run go test -run TestSeedCorpus -update)", path)
			}
		}
	}
}
