package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
)

// Error kinds that are not server error codes: what went wrong on the
// way, as the client saw it. Reports count them next to the apierr codes
// servers send, so a target that refuses or drops connections shows up as
// errors rather than stopping the run.
const (
	KindRefused       = "connection_refused"  // nothing listens (ECONNREFUSED)
	KindReset         = "connection_reset"    // the peer reset the connection
	KindClosed        = "connection_closed"   // the peer closed it (EOF)
	KindTimeout       = "timeout"             // no answer in time (also the server's own timeout code)
	KindNoLocalPort   = "no_local_port"       // the source address ran out of ports
	KindTooManyFiles  = "too_many_open_files" // this process ran out of descriptors
	KindUnreachable   = "unreachable"         // no route, host down, DNS
	KindReconnect     = "reconnect"           // the server answered the Hello with a Reconnect
	KindClientClosed  = "client_closed"       // the player closed it (session end, ramp-down)
	KindBadResponse   = "bad_response"        // an answer the client could not read
	KindUnclassified  = "other"
	disconnectPrefix  = "disconnect:"
	movedPrefix       = "moved:"
	sessionEndedEvent = "session_end"
)

// errorKind names the kind of err for reports: the transport's failure
// when there is one underneath (a code such as unavailable says less than
// "connection refused"), else the server's error code.
func errorKind(err error) string {
	var re *gameclient.ReconnectError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, gameclient.ErrClosed):
		return KindClientClosed
	case errors.As(err, &re):
		return KindReconnect
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindReset
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return KindNoLocalPort
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return KindTooManyFiles
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), isDNS(err):
		return KindUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindClosed
	}
	if e, ok := apierr.From(err); ok && e.Code != "" {
		return string(e.Code)
	}
	return KindUnclassified
}

func isDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}
