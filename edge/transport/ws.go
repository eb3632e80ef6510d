package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// WebSocket errors a reader sees; the edge answers each with its code.
var (
	ErrTextMessage = apierr.New(apierr.BadFrame, "websocket text messages are refused: send each frame as one binary message")
	ErrNotOneFrame = apierr.New(apierr.BadFrame, "a websocket binary message must carry exactly one frame")
	errMsgTooLarge = apierr.New(apierr.FrameTooLarge, "websocket message exceeds the maximum frame size")
)

// wsCloseWait bounds the close handshake a CloseWrite starts.
const wsCloseWait = time.Second

// WSListener serves WebSocket sessions at WSPath and yields each as a
// net.Conn.
type WSListener struct {
	ln     net.Listener
	srv    *http.Server
	up     websocket.Upgrader
	max    int
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	done   chan struct{}
}

var _ net.Listener = (*WSListener)(nil)

// ListenWS listens on the TCP address addr; with tlsConf it serves wss.
// maxFrame bounds a message (a frame), like the edge's maximum frame.
func ListenWS(addr string, tlsConf *tls.Config, maxFrame int, log *slog.Logger) (*WSListener, error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: websocket listen %s: %w", addr, err)
	}
	var ln net.Listener = batchListener{raw}
	if tlsConf != nil {
		tc := tlsConf.Clone()
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	l := &WSListener{
		ln:  ln,
		max: protocol.ClampMaxFrame(maxFrame),
		up: websocket.Upgrader{
			ReadBufferSize: 4 << 10, WriteBufferSize: 4 << 10, Subprotocols: []string{WSSubprotocol},
			// Sessions authenticate with the token in their first frame,
			// never with cookies, so a foreign page gains nothing by
			// opening one: any origin may connect (browser games).
			CheckOrigin: func(*http.Request) bool { return true },
		},
		conns: make(chan net.Conn), closed: make(chan struct{}), done: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WSPath, l.upgrade)
	l.srv = &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// The upgrade handler finds the connection's batcher here.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if bc, ok := c.(*batchConn); ok {
				ctx = context.WithValue(ctx, batchKey{}, bc)
			}
			return ctx
		},
	}
	go func() {
		defer close(l.done)
		_ = l.srv.Serve(ln)
	}()
	return l, nil
}

func (l *WSListener) upgrade(w http.ResponseWriter, r *http.Request) {
	ws, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	ws.SetReadLimit(int64(l.max))
	bc, _ := r.Context().Value(batchKey{}).(*batchConn)
	c := newWSConn(ws, bc)
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

// Accept waits for the next session.
func (l *WSListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops listening; sessions already accepted stay open (they are
// hijacked from the HTTP server).
func (l *WSListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.srv.Close()
		<-l.done
	})
	return err
}

// Addr is the TCP address listened on.
func (l *WSListener) Addr() net.Addr { return l.ln.Addr() }

// DialWS opens a WebSocket session at url (ws:// or wss://; the path is
// WSPath). tlsConf is for wss.
func DialWS(ctx context.Context, url string, tlsConf *tls.Config) (net.Conn, error) {
	var bc *batchConn
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsConf, Subprotocols: []string{WSSubprotocol},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			bc = &batchConn{Conn: c}
			return bc, nil
		},
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("transport: websocket dial %s: %w", url, err)
	}
	ws.SetReadLimit(protocol.HardMaxFrame)
	return newWSConn(ws, bc), nil
}

// wsConn is a WebSocket connection as a frame stream. Reads check that
// every message is one binary frame; writes send every complete frame
// written as one binary message.
type wsConn struct {
	ws *websocket.Conn
	bc *batchConn // the socket under ws; nil: no batching

	rbuf []byte // the current message
	r    []byte // its unread rest

	wmu     sync.Mutex
	pending []byte // a frame not yet completely written

	// gorilla keeps the write deadline in a field its writes read without a
	// lock: the deadline is recorded here and handed to it under wmu, and
	// also set on the socket at once so that it cuts a write in progress.
	dlMu sync.Mutex
	wdl  time.Time
}

func newWSConn(ws *websocket.Conn, bc *batchConn) *wsConn { return &wsConn{ws: ws, bc: bc} }

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.r) == 0 {
		mt, rd, err := c.ws.NextReader()
		if err != nil {
			return 0, wsReadError(err)
		}
		if mt != websocket.BinaryMessage {
			return 0, ErrTextMessage
		}
		c.rbuf = c.rbuf[:0]
		for {
			if len(c.rbuf) == cap(c.rbuf) {
				c.rbuf = append(c.rbuf, 0)[:len(c.rbuf)]
			}
			n, err := rd.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
			c.rbuf = c.rbuf[:len(c.rbuf)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, wsReadError(err)
			}
		}
		if len(c.rbuf) < protocol.LengthSize || protocol.LengthSize+int(binary.BigEndian.Uint32(c.rbuf)) != len(c.rbuf) {
			return 0, ErrNotOneFrame
		}
		c.r = c.rbuf
	}
	n := copy(p, c.r)
	c.r = c.r[n:]
	return n, nil
}

func wsReadError(err error) error {
	var (
		ce *websocket.CloseError
		ne net.Error
	)
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// gorilla hides the deadline error's identity; callers test for it.
		return os.ErrDeadlineExceeded
	case errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway || ce.Code == websocket.CloseNoStatusReceived):
		return io.EOF
	case errors.Is(err, websocket.ErrReadLimit):
		return errMsgTooLarge
	}
	return err
}

// Write sends every complete frame in p as one binary message; a partial
// frame waits for the rest.
func (c *wsConn) Write(p []byte) (n int, retErr error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dlMu.Lock()
	_ = c.ws.SetWriteDeadline(c.wdl)
	c.dlMu.Unlock()
	buf := p
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		buf = c.pending
	}
	// gorilla writes each message to the socket on its own: the batcher
	// holds them, so a batch of frames leaves in one write.
	if c.bc != nil {
		c.bc.hold()
		defer func() {
			if err := c.bc.release(); err != nil && retErr == nil {
				n, retErr = 0, err
			}
		}()
	}
	for len(buf) >= protocol.LengthSize {
		size := protocol.LengthSize + int(binary.BigEndian.Uint32(buf))
		if size > protocol.LengthSize+protocol.HardMaxFrame {
			return 0, fmt.Errorf("transport: websocket write: %w", protocol.ErrFrameTooLarge)
		}
		if len(buf) < size {
			break
		}
		if err := c.ws.WriteMessage(websocket.BinaryMessage, buf[:size]); err != nil {
			return 0, err
		}
		buf = buf[size:]
	}
	c.pending = append(c.pending[:0], buf...)
	return len(p), nil
}

// CloseWrite starts the close handshake; the peer's answering close ends
// Read with io.EOF.
func (c *wsConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(wsCloseWait))
}

func (c *wsConn) Close() error                      { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.dlMu.Lock()
	c.wdl = t
	c.dlMu.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// batchKey finds a connection's batcher in its HTTP request context.
type batchKey struct{}

// batchListener wraps accepted connections in batchers.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c}, nil
}

// batchConn is a socket whose writes can be held and released as one.
type batchConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.holding {
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

// release writes what was held in one write.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	if cap(b.buf) > 64<<10 {
		b.buf = nil
	} else {
		b.buf = b.buf[:0]
	}
	return err
}
