// Package protocol is livecell's wire protocol: the frame codec, the opcode
// table, the handshake and control payloads, and the contract between the
// gateway and the services that answer opcodes.
//
// docs/protocol.md is the specification; testdata/vectors holds byte-exact
// golden frames that every implementation (this package, the C++ client in
// unreal/) must encode and decode identically.
package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/livecell/livecell/internal/apierr"
)

// Layout of a frame on the wire (all integers big-endian):
//
//	offset size field
//	0      4    length: bytes that follow this field (HeaderSize-LengthSize + payload)
//	4      1    version (Version)
//	5      1    flags
//	6      2    opcode
//	8      4    request id (0: not a request, e.g. a push)
//	12     n    payload
const (
	Version    = 1
	LengthSize = 4
	HeaderSize = 12

	// DefaultMaxFrame is the largest frame (header included) a peer accepts
	// unless configured otherwise; it is announced in the Welcome.
	DefaultMaxFrame = 64 << 10
	// HardMaxFrame bounds any configuration: no peer may accept more.
	HardMaxFrame = 1 << 20
	// minBody is the smallest legal value of the length field.
	minBody = HeaderSize - LengthSize
)

// Flags are the frame's flag bits. Bits not defined here are reserved and
// must be zero; a frame with a reserved bit set is malformed.
type Flags uint8

const (
	// FlagResponse marks the answer to the request with the same id.
	FlagResponse Flags = 1 << 0
	// FlagBinary marks a payload in the compact binary encoding. Reserved:
	// version 1 peers answer it with unsupported_encoding.
	FlagBinary Flags = 1 << 1

	knownFlags = FlagResponse | FlagBinary
)

// Header is a frame without its payload.
type Header struct {
	Version   uint8
	Flags     Flags
	Opcode    Opcode
	RequestID uint32
}

// Frame is one protocol message. Payload may alias a reader's buffer: it is
// valid only until the next read unless copied.
type Frame struct {
	Header
	Payload []byte
}

// Size is the frame's length on the wire.
func (f Frame) Size() int { return HeaderSize + len(f.Payload) }

// IsResponse reports whether the frame answers a request.
func (f Frame) IsResponse() bool { return f.Flags&FlagResponse != 0 }

// Decode errors. Each carries the stable code the gateway sends back.
var (
	ErrShort              = errors.New("protocol: short buffer")
	ErrFrameTooLarge      = apierr.New(apierr.FrameTooLarge, "frame exceeds the maximum frame size")
	ErrBadLength          = apierr.New(apierr.BadFrame, "frame length is shorter than the header")
	ErrUnsupportedVersion = apierr.New(apierr.UnsupportedVersion, "unsupported protocol version")
	ErrReservedFlags      = apierr.New(apierr.BadFrame, "reserved flag bits are set")
)

// AppendFrame appends the encoding of f to dst. It does not check f against a
// maximum size; writers do.
func AppendFrame(dst []byte, f Frame) []byte {
	v := f.Version
	if v == 0 {
		v = Version
	}
	var h [HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(minBody+len(f.Payload)))
	h[4] = v
	h[5] = byte(f.Flags)
	binary.BigEndian.PutUint16(h[6:8], uint16(f.Opcode))
	binary.BigEndian.PutUint32(h[8:12], f.RequestID)
	dst = append(dst, h[:]...)
	return append(dst, f.Payload...)
}

// Encode returns the encoding of f.
func Encode(f Frame) []byte { return AppendFrame(make([]byte, 0, f.Size()), f) }

// checkLength validates a length field against max (whole frame size).
func checkLength(n uint32, max int) error {
	if n < minBody {
		return ErrBadLength
	}
	if uint64(n)+LengthSize > uint64(max) {
		return ErrFrameTooLarge
	}
	return nil
}

// parseHeader validates and decodes the 8 header bytes after the length.
func parseHeader(b []byte) (Header, error) {
	h := Header{
		Version:   b[0],
		Flags:     Flags(b[1]),
		Opcode:    Opcode(binary.BigEndian.Uint16(b[2:4])),
		RequestID: binary.BigEndian.Uint32(b[4:8]),
	}
	if h.Version != Version {
		return h, ErrUnsupportedVersion
	}
	if h.Flags&^knownFlags != 0 {
		return h, ErrReservedFlags
	}
	return h, nil
}

// Parse decodes one frame from the start of b. It returns the frame, the
// number of bytes consumed, and ErrShort when b does not yet hold a whole
// frame (the caller reads more and tries again). The payload aliases b.
// max is normalised like NewReader's (ClampMaxFrame: 0 means
// DefaultMaxFrame, nothing above HardMaxFrame), so a misconfigured
// negative or huge max cannot disable the limit.
//
// Parse never allocates and fails as early as the bytes allow, in the same
// order as Reader: the length is checked once its 4 bytes are present (a
// peer cannot make a reader buffer more than max bytes) and the version and
// flags once the 12 header bytes are present (a bad header is rejected
// without waiting for a payload that may never come).
func Parse(b []byte, max int) (Frame, int, error) {
	if len(b) < LengthSize {
		return Frame{}, 0, ErrShort
	}
	n := binary.BigEndian.Uint32(b[:4])
	if err := checkLength(n, ClampMaxFrame(max)); err != nil {
		return Frame{}, 0, err
	}
	if len(b) < HeaderSize {
		return Frame{}, 0, ErrShort
	}
	h, err := parseHeader(b[LengthSize:HeaderSize])
	if err != nil {
		return Frame{}, 0, err
	}
	total := LengthSize + int(n)
	if len(b) < total {
		return Frame{}, 0, ErrShort
	}
	return Frame{Header: h, Payload: b[HeaderSize:total:total]}, total, nil
}

// Reader reads frames from a stream, reusing one buffer that grows up to the
// largest frame seen (bounded by max).
type Reader struct {
	r   *bufio.Reader
	buf []byte
	max int
}

// NewReader returns a Reader that rejects frames larger than max bytes
// (clamped to HardMaxFrame; 0 means DefaultMaxFrame).
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), max: ClampMaxFrame(max)}
}

// ClampMaxFrame normalises a configured maximum frame size.
func ClampMaxFrame(max int) int {
	switch {
	case max <= 0:
		return DefaultMaxFrame
	case max < HeaderSize:
		return HeaderSize
	case max > HardMaxFrame:
		return HardMaxFrame
	}
	return max
}

// Next reads the next frame. The payload is valid until the next call. A
// stream that ends between frames returns io.EOF; one that ends inside a
// frame returns io.ErrUnexpectedEOF.
func (r *Reader) Next() (Frame, error) {
	var lb [HeaderSize]byte
	if _, err := io.ReadFull(r.r, lb[:LengthSize]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(lb[:LengthSize])
	if err := checkLength(n, r.max); err != nil {
		return Frame{}, err
	}
	if _, err := io.ReadFull(r.r, lb[LengthSize:]); err != nil {
		return Frame{}, eofInFrame(err)
	}
	h, err := parseHeader(lb[LengthSize:])
	if err != nil {
		return Frame{}, err
	}
	size := int(n) - minBody
	if cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	p := r.buf[:size]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return Frame{}, eofInFrame(err)
	}
	return Frame{Header: h, Payload: p}, nil
}

func eofInFrame(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteFrame writes f to w in one Write call.
func WriteFrame(w io.Writer, f Frame) error {
	if f.Size() > HardMaxFrame {
		return fmt.Errorf("protocol: write frame: %w", ErrFrameTooLarge)
	}
	_, err := w.Write(Encode(f))
	return err
}
