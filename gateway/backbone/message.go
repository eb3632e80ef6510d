// Package backbone is the connection between an edge relay and a cell
// gateway: one persistent TCP connection (a link) per edge and gateway
// process that multiplexes many player sessions. docs/protocol.md, section
// "Edge backbone", is the specification; this package is its Go
// implementation, both ends of it:
//
//   - Server runs in the gateway. It authenticates each edge with a
//     server-audience credential and turns every session the edge opens
//     into a net.Conn (a Stream) that the gateway serves exactly like a
//     player's TCP connection, so the protocol logic of the gateway is the
//     same whichever way a player arrives.
//   - Client runs in the edge. It dials a gateway's backbone address, opens
//     sessions and delivers what the gateway sends on each of them to a
//     Handler, on the link's reader goroutine, without a goroutine per
//     session.
//
// A session's DATA messages carry its protocol frame stream as bytes: a
// message may hold several frames or part of one, and the receiver
// reassembles. The edge never re-encodes a frame.
package backbone

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Layout of a message on the wire (all integers big-endian):
//
//	offset size field
//	0      4    length: bytes that follow this field (5 + body)
//	4      1    kind
//	5      4    session id (0 for link-level kinds)
//	9      n    body
const (
	// Version is the backbone protocol version, carried in Hello.
	Version    = 1
	LengthSize = 4
	HeaderSize = 9

	// MaxData bounds the body of a DATA message. It is the largest frame
	// any peer may send (protocol.HardMaxFrame), so a sender can always
	// put a whole frame in one message, but senders may split anywhere.
	MaxData = protocol.HardMaxFrame
	// MaxControl bounds the body of every other kind: JSON control
	// payloads, the largest being a Hello with its credential.
	MaxControl = 8 << 10

	minBody = HeaderSize - LengthSize
)

// Kind says what a message is.
type Kind uint8

// Kinds. Link-level kinds carry session id 0; session kinds a non-zero id.
const (
	KindHello   Kind = 0x01 // edge → gateway, link: Hello, the first message
	KindWelcome Kind = 0x02 // gateway → edge, link: Welcome, the answer to Hello
	KindOpen    Kind = 0x03 // edge → gateway, session: Open, starts a player session
	KindData    Kind = 0x04 // either way, session: bytes of the session's frame stream
	KindClose   Kind = 0x05 // either way, session: Close, the sender sends no more for it
	KindPing    Kind = 0x06 // either way, link: answered with Pong and the same body
	KindPong    Kind = 0x07 // either way, link: the answer to Ping
	KindGoAway  Kind = 0x08 // gateway → edge, link: GoAway, open no new sessions here
	KindError   Kind = 0x09 // gateway → edge, link: protocol.ErrorBody, then the link closes
	KindWindow  Kind = 0x0a // gateway → edge, session: 4-byte credit, more bytes the edge may send
)

var kindNames = map[Kind]string{
	KindHello: "hello", KindWelcome: "welcome", KindOpen: "open", KindData: "data", KindClose: "close",
	KindPing: "ping", KindPong: "pong", KindGoAway: "goaway", KindError: "error", KindWindow: "window",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(0x%02x)", uint8(k))
}

// session reports whether messages of kind k belong to a session.
func (k Kind) session() bool {
	return k == KindOpen || k == KindData || k == KindClose || k == KindWindow
}

// Message is one backbone message. Body may alias a reader's buffer: it is
// valid only until the next read unless copied.
type Message struct {
	Kind    Kind
	Session uint32
	Body    []byte
}

// Decode errors. They carry bad_frame or frame_too_large: a link that
// sends one is broken and is closed.
var (
	ErrShort       = errors.New("backbone: short buffer")
	ErrBadLength   = apierr.New(apierr.BadFrame, "backbone message length is shorter than its header")
	ErrTooLarge    = apierr.New(apierr.FrameTooLarge, "backbone message body exceeds its limit")
	ErrUnknownKind = apierr.New(apierr.BadFrame, "unknown backbone message kind")
	ErrBadSession  = apierr.New(apierr.BadFrame, "backbone message session id does not match its kind")
)

// Append appends the encoding of m to dst. It does not check m; Parse does.
func Append(dst []byte, m Message) []byte {
	var h [HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(minBody+len(m.Body)))
	h[4] = byte(m.Kind)
	binary.BigEndian.PutUint32(h[5:9], m.Session)
	dst = append(dst, h[:]...)
	return append(dst, m.Body...)
}

// maxBody is the body limit for kind k.
func maxBody(k Kind) int {
	if k == KindData {
		return MaxData
	}
	return MaxControl
}

// parseHeader checks the 9 header bytes and returns the body length. Like
// protocol.Parse it fails as soon as the bytes allow: the length and kind
// are checked before any body byte is buffered, so a peer can never make a
// reader hold more than MaxData bytes.
func parseHeader(h []byte) (Kind, uint32, int, error) {
	n := binary.BigEndian.Uint32(h[0:4])
	if n < minBody {
		return 0, 0, 0, ErrBadLength
	}
	k := Kind(h[4])
	if _, ok := kindNames[k]; !ok {
		return 0, 0, 0, ErrUnknownKind
	}
	body := uint64(n) - minBody
	if body > uint64(maxBody(k)) {
		return 0, 0, 0, ErrTooLarge
	}
	sid := binary.BigEndian.Uint32(h[5:9])
	if (sid != 0) != k.session() {
		return 0, 0, 0, ErrBadSession
	}
	return k, sid, int(body), nil
}

// Parse decodes one message from the start of b. It returns the message,
// the bytes consumed, and ErrShort when b does not yet hold a whole one.
// The body aliases b. Parse never allocates.
func Parse(b []byte) (Message, int, error) {
	if len(b) < HeaderSize {
		// The length alone can already be refused.
		if len(b) >= LengthSize && binary.BigEndian.Uint32(b) < minBody {
			return Message{}, 0, ErrBadLength
		}
		return Message{}, 0, ErrShort
	}
	k, sid, n, err := parseHeader(b[:HeaderSize])
	if err != nil {
		return Message{}, 0, err
	}
	total := HeaderSize + n
	if len(b) < total {
		return Message{}, 0, ErrShort
	}
	return Message{Kind: k, Session: sid, Body: b[HeaderSize:total:total]}, total, nil
}

// Reader reads messages from a stream, reusing one buffer that grows up to
// the largest body seen.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Next reads the next message; its body is valid until the next call. A
// stream that ends between messages returns io.EOF, inside one
// io.ErrUnexpectedEOF.
func (r *Reader) Next() (Message, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:LengthSize]); err != nil {
		return Message{}, err
	}
	if binary.BigEndian.Uint32(h[:LengthSize]) < minBody {
		return Message{}, ErrBadLength
	}
	if _, err := io.ReadFull(r.r, h[LengthSize:]); err != nil {
		return Message{}, unexpected(err)
	}
	k, sid, n, err := parseHeader(h[:])
	if err != nil {
		return Message{}, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.r, body); err != nil {
		return Message{}, unexpected(err)
	}
	return Message{Kind: k, Session: sid, Body: body}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Hello is the body of KindHello: the edge's credential, a server token
// with audience livecell:server and scope "edge".
type Hello struct {
	Version int    `json:"version"`
	Token   string `json:"token"`
	Edge    string `json:"edge,omitempty"` // the edge's id, for logs
}

// Welcome is the body of KindWelcome.
type Welcome struct {
	Cell     string `json:"cell"`      // the cell this gateway serves
	MaxFrame int    `json:"max_frame"` // the gateway's maximum frame size
	// IdleTimeoutMS: the gateway closes a link silent for longer; the edge
	// pings well within it.
	IdleTimeoutMS int64 `json:"idle_timeout_ms"`
	// Window is each session's initial credit: the bytes the edge may send
	// on it before a WINDOW message grants more.
	Window int `json:"window"`
}

// Open is the body of KindOpen: where the player is, for the gateway's
// logs and per-address limits.
type Open struct {
	Remote    string `json:"remote,omitempty"`    // the player's address, ip:port
	Transport string `json:"transport,omitempty"` // tcp, quic or ws
}

// Close is the optional body of KindClose.
type Close struct {
	Reason string `json:"reason,omitempty"`
}

// GoAway is the body of KindGoAway.
type GoAway struct {
	Reason string `json:"reason"` // draining, shutting_down
}

// Kinds lists every kind, in numeric order; a test keeps docs/protocol.md
// in step with it.
func Kinds() []Kind {
	return []Kind{KindHello, KindWelcome, KindOpen, KindData, KindClose, KindPing, KindPong, KindGoAway, KindError, KindWindow}
}
