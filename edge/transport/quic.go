package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC defaults.
const (
	// quicIdleTimeout outlasts the gateway's idle timeout (3 heartbeats of
	// 15 s), so a session ends by the protocol's rules, not QUIC's.
	quicIdleTimeout = 60 * time.Second
)

// QUICListener accepts QUIC connections and yields, for each, its first
// bidirectional stream as a net.Conn. A client opens exactly one stream;
// the connection allows no other.
type QUICListener struct {
	ln     *quic.Listener
	wait   time.Duration // for the stream
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

var _ net.Listener = (*QUICListener)(nil)

// ListenQUIC listens on the UDP address addr. tlsConf must carry a
// certificate (ServerTLS). A connection that opens no stream within
// streamWait is closed: a QUIC stream exists for the server only once the
// client sends on it, so silence before the Hello ends this way rather
// than with an auth_timeout frame.
func ListenQUIC(addr string, tlsConf *tls.Config, streamWait time.Duration) (*QUICListener, error) {
	tc := tlsConf.Clone()
	tc.NextProtos = []string{ALPN}
	ln, err := quic.ListenAddr(addr, tc, &quic.Config{
		MaxIdleTimeout:        quicIdleTimeout,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: quic listen %s: %w", addr, err)
	}
	l := &QUICListener{ln: ln, wait: streamWait, conns: make(chan net.Conn), closed: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *QUICListener) acceptLoop() {
	defer l.wg.Done()
	for {
		qc, err := l.ln.Accept(context.Background())
		if err != nil {
			return // closed
		}
		l.wg.Add(1)
		go l.awaitStream(qc)
	}
}

// awaitStream hands on the connection's stream once the client opens it.
func (l *QUICListener) awaitStream(qc *quic.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(qc.Context(), l.wait)
	st, err := qc.AcceptStream(ctx)
	cancel()
	if err != nil {
		_ = qc.CloseWithError(0, "no stream")
		return
	}
	c := &quicConn{qc: qc, st: st}
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

// Accept waits for the next session.
func (l *QUICListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops listening. Sessions already accepted stay open: they share
// the listener's UDP socket, which quic-go keeps until the last one closes.
func (l *QUICListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.ln.Close()
	})
	return err
}

// Addr is the UDP address listened on.
func (l *QUICListener) Addr() net.Addr { return l.ln.Addr() }

// DialQUIC connects to an edge's QUIC address and opens the session's
// stream. tlsConf must trust the edge (ClientTLS); its ALPN is set here.
func DialQUIC(ctx context.Context, addr string, tlsConf *tls.Config) (net.Conn, error) {
	tc := tlsConf.Clone()
	tc.NextProtos = []string{ALPN}
	qc, err := quic.DialAddr(ctx, addr, tc, &quic.Config{MaxIdleTimeout: quicIdleTimeout, KeepAlivePeriod: quicIdleTimeout / 4})
	if err != nil {
		return nil, fmt.Errorf("transport: quic dial %s: %w", addr, err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		_ = qc.CloseWithError(0, "")
		return nil, fmt.Errorf("transport: quic open stream: %w", err)
	}
	return &quicConn{qc: qc, st: st}, nil
}

// quicConn is a QUIC connection's one stream as a net.Conn.
type quicConn struct {
	qc   *quic.Conn
	st   *quic.Stream
	once sync.Once
}

func (c *quicConn) Read(p []byte) (int, error) {
	n, err := c.st.Read(p)
	return n, translate(err)
}

func (c *quicConn) Write(p []byte) (int, error) {
	n, err := c.st.Write(p)
	return n, translate(err)
}

// CloseWrite ends the stream's sending side (FIN); reading continues.
func (c *quicConn) CloseWrite() error { return c.st.Close() }

// Close ends the stream both ways and the connection.
func (c *quicConn) Close() error {
	c.once.Do(func() {
		c.st.CancelRead(0)
		_ = c.st.Close()
		_ = c.qc.CloseWithError(0, "")
	})
	return nil
}

func (c *quicConn) LocalAddr() net.Addr                { return c.qc.LocalAddr() }
func (c *quicConn) RemoteAddr() net.Addr               { return c.qc.RemoteAddr() }
func (c *quicConn) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *quicConn) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *quicConn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }

// translate turns QUIC's "peer closed the connection" into io.EOF-like
// ends: a client that closes its QUIC connection has left, the same as a
// TCP client's FIN.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.ErrorCode == 0 {
		return errPeerClosed{err}
	}
	return err
}

// errPeerClosed is a connection the peer closed on purpose; it unwraps to
// net.ErrClosed for callers that only want to know it is over.
type errPeerClosed struct{ err error }

func (e errPeerClosed) Error() string {
	return "transport: peer closed the connection: " + e.err.Error()
}
func (e errPeerClosed) Unwrap() error { return net.ErrClosed }
