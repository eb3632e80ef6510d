package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/livecell/livecell/internal/apierr"
)

// The golden vectors are the contract between this package and every other
// implementation of the protocol (the C++ client in unreal/ first), so they
// live as plain files another language can read: vectors.json describes each
// vector and a .bin file holds its exact bytes.
var update = flag.Bool("update", false, "rewrite testdata/vectors/*.bin and the hex fields of vectors.json from vectors.json")

const vectorsDir = "testdata/vectors"

type vectorSet struct {
	About   []string `json:"about"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	File        string       `json:"file"`
	Hex         string       `json:"hex"`
	MaxFrame    int          `json:"max_frame,omitempty"`
	Short       bool         `json:"short,omitempty"`
	Error       apierr.Code  `json:"error,omitempty"`
	Frame       *vectorFrame `json:"frame,omitempty"`
}

type vectorFrame struct {
	Version    uint8   `json:"version"`
	Flags      uint8   `json:"flags"`
	Opcode     uint16  `json:"opcode"`
	OpcodeName string  `json:"opcode_name"`
	RequestID  uint32  `json:"request_id"`
	Payload    *string `json:"payload,omitempty"`
	PayloadHex *string `json:"payload_hex,omitempty"`
}

// frame converts the JSON description into the Frame it describes.
func (vf *vectorFrame) frame() (Frame, error) {
	f := Frame{Header: Header{
		Version:   vf.Version,
		Flags:     Flags(vf.Flags),
		Opcode:    Opcode(vf.Opcode),
		RequestID: vf.RequestID,
	}}
	switch {
	case vf.Payload != nil && vf.PayloadHex != nil:
		return Frame{}, errors.New("both payload and payload_hex are set")
	case vf.Payload != nil:
		f.Payload = []byte(*vf.Payload)
	case vf.PayloadHex != nil:
		p, err := hex.DecodeString(*vf.PayloadHex)
		if err != nil {
			return Frame{}, err
		}
		f.Payload = p
	default:
		return Frame{}, errors.New("neither payload nor payload_hex is set")
	}
	return f, nil
}

// maxFrame is the limit the vector is decoded with.
func (v vector) maxFrame() int {
	if v.MaxFrame == 0 {
		return DefaultMaxFrame
	}
	return v.MaxFrame
}

func loadVectors(t testing.TB) vectorSet {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, "vectors.json"))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a typo in a key must not silently drop a check
	var vs vectorSet
	if err := dec.Decode(&vs); err != nil {
		t.Fatalf("decode vectors.json: %v", err)
	}
	return vs
}

// vectorInputs returns the bytes of every vector, for fuzz seeds.
func vectorInputs(t testing.TB) []vector {
	t.Helper()
	return loadVectors(t).Vectors
}

func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	if *update {
		updateVectors(t, vs)
	}
	if len(vs.Vectors) == 0 {
		t.Fatal("vectors.json holds no vectors")
	}
	seen := map[string]bool{}
	for _, v := range vs.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			if seen[v.Name] || seen[v.File] {
				t.Fatalf("duplicate vector name or file %q/%q", v.Name, v.File)
			}
			seen[v.Name], seen[v.File] = true, true
			b, err := os.ReadFile(filepath.Join(vectorsDir, v.File))
			if err != nil {
				t.Fatalf("read %s: %v (run with -update to create it)", v.File, err)
			}
			if got := hex.EncodeToString(b); got != v.Hex {
				t.Errorf("file bytes %s, want hex field %s", got, v.Hex)
			}
			kinds := 0
			for _, k := range []bool{v.Frame != nil, v.Error != "", v.Short} {
				if k {
					kinds++
				}
			}
			if kinds != 1 {
				t.Fatalf("vector must have exactly one of frame, error, short; has %d", kinds)
			}
			switch {
			case v.Frame != nil:
				checkValidVector(t, v, b)
			case v.Short:
				checkShortVector(t, v, b)
			default:
				checkErrorVector(t, v, b)
			}
		})
	}
}

func checkValidVector(t *testing.T, v vector, b []byte) {
	want, err := v.Frame.frame()
	if err != nil {
		t.Fatalf("frame description: %v", err)
	}
	if got := Opcode(v.Frame.Opcode).String(); got != v.Frame.OpcodeName {
		t.Errorf("opcode_name %q, want %q", v.Frame.OpcodeName, got)
	}
	if v.Frame.Payload != nil && !utf8.ValidString(*v.Frame.Payload) {
		t.Errorf("payload is not valid UTF-8; use payload_hex")
	}
	if got := Encode(want); !bytes.Equal(got, b) {
		t.Errorf("Encode = %x, want %x", got, b)
	}

	f, n, err := Parse(b, v.maxFrame())
	if err != nil {
		t.Fatalf("Parse: %v, want frame", err)
	}
	if n != len(b) {
		t.Errorf("Parse consumed %d bytes, want %d", n, len(b))
	}
	assertFrame(t, "Parse", f, want)

	r := NewReader(bytes.NewReader(b), v.maxFrame())
	f, err = r.Next()
	if err != nil {
		t.Fatalf("Reader.Next: %v, want frame", err)
	}
	assertFrame(t, "Reader.Next", f, want)
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Reader.Next after the frame: %v, want io.EOF", err)
	}
}

func checkShortVector(t *testing.T, v vector, b []byte) {
	if _, n, err := Parse(b, v.maxFrame()); err != ErrShort || n != 0 {
		t.Errorf("Parse = (n %d, %v), want (0, ErrShort)", n, err)
	}
	wantEOF := io.ErrUnexpectedEOF
	if len(b) == 0 {
		wantEOF = io.EOF
	}
	if _, err := NewReader(bytes.NewReader(b), v.maxFrame()).Next(); err != wantEOF {
		t.Errorf("Reader.Next: %v, want %v", err, wantEOF)
	}
}

func checkErrorVector(t *testing.T, v vector, b []byte) {
	if !v.Error.Known() {
		t.Fatalf("error %q is not an apierr code", v.Error)
	}
	_, _, err := Parse(b, v.maxFrame())
	if got := codeOf(err); got != v.Error {
		t.Errorf("Parse error %v (code %q), want code %q", err, got, v.Error)
	}
	_, err = NewReader(bytes.NewReader(b), v.maxFrame()).Next()
	if got := codeOf(err); got != v.Error {
		t.Errorf("Reader.Next error %v (code %q), want code %q", err, got, v.Error)
	}
}

// codeOf returns the apierr code err carries, or "" when it carries none
// (apierr.CodeOf would say "internal" and hide a missing code).
func codeOf(err error) apierr.Code {
	if e, ok := apierr.From(err); ok {
		return e.Code
	}
	return ""
}

func assertFrame(t *testing.T, what string, got, want Frame) {
	t.Helper()
	wantHeader := want.Header
	if wantHeader.Version == 0 {
		wantHeader.Version = Version
	}
	if got.Header != wantHeader {
		t.Errorf("%s header = %+v, want %+v", what, got.Header, wantHeader)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("%s payload = %q, want %q", what, got.Payload, want.Payload)
	}
}

// updateVectors rewrites every .bin file and the hex fields from the
// descriptions: valid vectors are encoded from their frame, invalid ones
// are the bytes of their hex field.
func updateVectors(t *testing.T, vs vectorSet) {
	t.Helper()
	for i := range vs.Vectors {
		v := &vs.Vectors[i]
		var b []byte
		if v.Frame != nil {
			f, err := v.Frame.frame()
			if err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			b = Encode(f)
			v.Hex = hex.EncodeToString(b)
		} else {
			var err error
			if b, err = hex.DecodeString(v.Hex); err != nil {
				t.Fatalf("%s: hex: %v", v.Name, err)
			}
		}
		if err := os.WriteFile(filepath.Join(vectorsDir, v.File), b, 0o644); err != nil {
			t.Fatalf("write %s: %v", v.File, err)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(vs); err != nil {
		t.Fatalf("encode vectors.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(vectorsDir, "vectors.json"), buf.Bytes(), 0o644); err != nil {
		t.Fatalf("write vectors.json: %v", err)
	}
}
