package edge

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

const (
	readBufSize = 4 << 10
	// closeLinger and closeFlush mirror the gateway's: a closing connection
	// gets a second to flush and half a second for the peer's FIN, so the
	// last frame is not destroyed by a reset.
	closeLinger = 500 * time.Millisecond
	closeFlush  = time.Second
	// idleSlack lets the gateway's idle_timeout reach the player before the
	// edge's own guard, which only matters while no gateway holds the
	// session.
	idleSlack = 5 * time.Second
	// unknownIdle guards a session before its Welcome announced the
	// gateway's idle timeout.
	unknownIdle = time.Minute
	// renewRetry spaces resume renewals the gateway refused.
	renewRetry = time.Minute
)

// errSessionClosed stops an attach whose player has gone.
var errSessionClosed = errors.New("edge: session closed")

// errLost is an attachment's link failing before its Welcome.
var errLost = apierr.New(apierr.Unavailable, "the backbone link failed during the handshake")

// Kinds of request the edge has in flight on a session.
const (
	reqPlayer = iota // a player's request; its answer goes back with the player's id
	reqHello         // the player's own Hello, relayed when the session first attaches
	reqAttach        // the edge's Hello re-attaching the session elsewhere
	reqResume        // the edge renewing the session's resume token
)

type inflight struct {
	kind   uint8
	player uint32 // the player's request id
	att    *attachment
}

// attachment is a session's presence on one gateway: a backbone stream.
type attachment struct {
	s      *session
	cell   string
	result chan error // capacity 1: the answer to the attaching Hello

	partial []byte // an incomplete frame from the gateway; only the link's reader touches it

	// Guarded by s.mu.
	st      streamSender
	ready   bool          // welcomed; the session's frames go here
	gone    bool          // detached: nothing more is done for it
	owed    int           // requests in flight on it
	retired chan struct{} // closed when owed reaches 0 after the session moved on
	move    string        // the gateway said it is going (shutting_down, draining): move when it closes
}

// streamSender is what a session needs of a backbone stream.
type streamSender interface {
	Send(p []byte) error
	Close(reason string)
}

// Data and Closed make an attachment the backbone.Handler of its stream.
func (a *attachment) Data(b []byte)    { a.s.fromCell(a, b) }
func (a *attachment) Closed(lost bool) { a.s.detached(a, lost) }

// session is one player connection and the relay state of its session.
type session struct {
	e      *Edge
	nc     net.Conn
	tr     string
	id     uint64
	remote string

	// To the player, drained by the writer goroutine.
	omu      sync.Mutex
	out      []byte
	spare    []byte
	queued   int
	oclosed  bool
	wake     chan struct{} // capacity 1
	readDone chan struct{}
	ended    chan struct{} // closed once the session starts closing

	// sendMu orders frames to the session's attachment: a player's frames
	// and the frames held while it moved must reach the gateway in order.
	// Taken before mu, never by the links' reader goroutines.
	sendMu sync.Mutex

	mu        sync.Mutex
	player    string
	cell      string // the cell serving the session
	sessionID string
	att       *attachment   // where the session's frames go; nil or not ready while it moves
	old       []*attachment // attachments moved away from, still owed answers
	moving    bool
	again     *move  // a move asked for while one ran; the running one starts it when done
	pending   []byte // player frames held while the session moves, as received
	npending  int
	inflight  map[uint32]inflight // by the id the gateway sees
	nextID    uint32
	resume    string
	renewAt   time.Time // when to renew resume; zero: never
	renewing  bool
	idle      time.Duration
	closing   bool
}

func newSession(e *Edge, nc net.Conn, tr string) *session {
	return &session{
		e: e, nc: nc, tr: tr, id: e.ids.Add(1), remote: nc.RemoteAddr().String(),
		wake: make(chan struct{}, 1), readDone: make(chan struct{}), ended: make(chan struct{}),
		inflight: map[uint32]inflight{}, idle: unknownIdle,
	}
}

func (s *session) start() {
	s.e.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// readLoop splits the player's byte stream into frames. Until the session
// is authenticated it handles exactly one frame, the Hello, and relays
// nothing.
func (s *session) readLoop() {
	defer s.e.wg.Done()
	defer close(s.readDone)
	defer func() {
		if r := recover(); r != nil {
			s.e.log.Error("edge: session reader panic", "panic", r, "stack", string(debug.Stack()))
			f := codedError(0, apierr.Internal, "internal error")
			s.close(&f, endProtocol)
		}
	}()
	_ = s.nc.SetReadDeadline(time.Now().Add(s.e.cfg.AuthTimeout))
	buf := make([]byte, readBufSize)
	small := buf
	authed := false
	start, end := 0, 0
	for {
		for start < end {
			f, n, err := protocol.Parse(buf[start:end], s.e.cfg.MaxFrame)
			if errors.Is(err, protocol.ErrShort) {
				break
			}
			if err != nil {
				s.protocolError(err)
				s.discard(small)
				return
			}
			raw := buf[start : start+n]
			start += n
			if !authed {
				if !s.authenticate(f, raw) {
					s.discard(small)
					return
				}
				authed = true
				continue
			}
			s.fromPlayer(f, raw)
		}
		if s.isClosing() {
			s.discard(small)
			return
		}
		switch {
		case start == end:
			start, end = 0, 0
			if len(buf) != len(small) {
				buf = small
			}
		case end == len(buf):
			end = copy(buf, buf[start:end])
			start = 0
			if end == len(buf) { // Parse accepted the length, so it is within MaxFrame
				big := make([]byte, protocol.LengthSize+int(binary.BigEndian.Uint32(buf)))
				copy(big, buf[:end])
				buf = big
			}
		}
		if authed {
			s.mu.Lock()
			idle := s.idle
			s.mu.Unlock()
			_ = s.nc.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := s.nc.Read(buf[end:])
		end += n
		if err != nil && n == 0 {
			s.readFailed(err, authed)
			return
		}
	}
}

func (s *session) readFailed(err error, authed bool) {
	if s.isClosing() {
		return
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		code, msg, reason := apierr.IdleTimeout, "no frame within the idle timeout", endClientLeft
		if !authed {
			code, msg, reason = apierr.AuthTimeout, "no hello within the auth timeout", endAuthFailed
			s.e.m.authFailures.WithLabelValues(string(code)).Inc()
		}
		f := codedError(0, code, msg)
		s.close(&f, reason)
	default:
		if _, coded := apierr.From(err); coded { // a transport's framing error (WebSocket)
			s.protocolError(err)
			return
		}
		s.close(nil, endClientLeft)
	}
}

// protocolError answers input that cannot be framed and closes.
func (s *session) protocolError(err error) {
	f := codedError(0, apierr.CodeOf(err), apierr.MessageOf(err))
	s.close(&f, endProtocol)
}

// discard drops input until the writer's linger ends, so unread bytes do
// not turn the close into a reset.
func (s *session) discard(buf []byte) {
	for {
		if _, err := s.nc.Read(buf); err != nil {
			return
		}
	}
}

// authenticate checks the player's first frame and attaches the session;
// it reports whether the session continues. Nothing is relayed unless the
// Hello carries a token that verifies.
func (s *session) authenticate(f protocol.Frame, raw []byte) bool {
	refuse := func(code apierr.Code, msg string) bool {
		s.e.m.authFailures.WithLabelValues(string(code)).Inc()
		ef := codedError(f.RequestID, code, msg)
		s.close(&ef, endAuthFailed)
		return false
	}
	if f.Opcode != protocol.OpHello || f.IsResponse() {
		return refuse(apierr.NotAuthenticated, "the first frame must be hello")
	}
	if f.Flags&protocol.FlagBinary != 0 {
		return refuse(apierr.UnsupportedEncoding, "binary payloads are not supported by protocol version 1")
	}
	var h protocol.Hello
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		return refuse(apierr.BadRequest, "hello payload must be a JSON object")
	}
	if h.Protocol != protocol.Version {
		return refuse(apierr.UnsupportedVersion, fmt.Sprintf("protocol %d is not supported; this edge speaks %d", h.Protocol, protocol.Version))
	}
	var (
		claims token.Claims
		err    error
	)
	switch {
	case h.Token != "":
		claims, err = s.e.tokens.Verify(h.Token, token.AudiencePlayer)
	case h.ResumeToken != "":
		claims, err = s.e.tokens.Verify(h.ResumeToken, token.AudienceResume)
	default:
		return refuse(apierr.Unauthenticated, "hello carries neither token nor resume_token")
	}
	if err != nil {
		s.e.log.Info("edge: authentication failed", "code", string(apierr.CodeOf(err)), "error", err.Error(), "remote", s.remote)
		return refuse(apierr.CodeOf(err), apierr.MessageOf(err))
	}
	s.mu.Lock()
	s.player = claims.Subject
	if h.ResumeToken != "" {
		s.resume = h.ResumeToken
	}
	s.mu.Unlock()

	home := s.e.homeOf(s.e.base, claims.Subject, claims.Cell)
	hello := append([]byte(nil), raw...)
	var last error
	for _, cell := range s.e.route(home) {
		_, err := s.attach(cell, hello, reqHello, f.RequestID)
		if err == nil {
			return true
		}
		if errors.Is(err, errSessionClosed) {
			return false
		}
		if !tryElsewhere(apierr.CodeOf(err)) {
			// The gateway's refusal went to the player as the answer.
			s.close(nil, endAuthFailed)
			return false
		}
		last = err
	}
	s.e.log.Warn("edge: no cell for a player", "player", claims.Subject, "home", home, "error", last)
	ef := codedError(f.RequestID, apierr.NoHealthyCell, "no cell can serve this player now: retry later")
	s.close(&ef, endNoCell)
	return false
}

// tryElsewhere reports whether a gateway's refusal of a Hello means
// another cell may take the session, rather than the player's
// credentials being wrong.
func tryElsewhere(code apierr.Code) bool {
	switch code {
	case apierr.Draining, apierr.ShuttingDown, apierr.Unavailable, apierr.PermissionDenied, apierr.UnknownPlayer,
		apierr.Internal, apierr.Timeout, apierr.NoHealthyCell:
		return true
	}
	return false
}

// attach opens the session on cell's gateway with hello (its request id
// replaced by one of the edge's) and waits for the answer. On a Welcome the
// attachment becomes the session's and the frames held meanwhile follow
// the Hello.
func (s *session) attach(cell string, hello []byte, kind uint8, playerID uint32) (*attachment, error) {
	link, err := s.e.pool.get(s.e.base, cell)
	if err != nil {
		return nil, err
	}
	a := &attachment{s: s, cell: cell, result: make(chan error, 1)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, errSessionClosed
	}
	id := s.newID()
	s.inflight[id] = inflight{kind: kind, player: playerID, att: a}
	s.att = a
	s.mu.Unlock()
	st, err := link.Open(openInfo(s), a)
	if err != nil {
		s.dropAttach(a, id)
		return nil, err
	}
	s.mu.Lock()
	a.st = st
	s.mu.Unlock()
	binary.BigEndian.PutUint32(hello[8:12], id)
	if err := st.Send(hello); err != nil {
		st.Close("")
		s.dropAttach(a, id)
		return nil, apierr.Wrap("edge.attach", apierr.Unavailable, "send hello to "+cell, err)
	}
	s.e.m.toCell.Inc()
	t := time.NewTimer(s.e.cfg.HelloTimeout)
	select {
	case err = <-a.result:
	case <-t.C:
		err = apierr.New(apierr.Timeout, "cell %s did not answer the hello in time", cell)
	case <-s.ended:
		err = errSessionClosed
	}
	t.Stop()
	if err == nil {
		err = s.activate(a)
		if errors.Is(err, errLost) && kind == reqHello {
			// The link failed after the player got its Welcome: from the
			// player's side the session exists, so this is a failover.
			s.goReattach(cell, "failover", "")
			return a, nil
		}
	}
	if err != nil {
		st.Close("")
		s.dropAttach(a, id)
		return nil, err
	}
	return a, nil
}

func openInfo(s *session) backbone.Open { return backbone.Open{Remote: s.remote, Transport: s.tr} }

// dropAttach forgets an attachment that never became the session's.
func (s *session) dropAttach(a *attachment, helloID uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.gone = true
	delete(s.inflight, helloID)
	if s.att == a {
		s.att = nil
	}
}

// activate makes a welcomed attachment the session's and sends it the
// frames held while the session moved.
func (s *session) activate(a *attachment) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return errSessionClosed
	case a.gone || s.att != a: // its link failed right after the Welcome
		s.mu.Unlock()
		return errLost
	}
	a.ready = true
	held := s.pending
	s.pending, s.npending = nil, 0
	for b := held; len(b) > 0; {
		f, n, err := protocol.Parse(b, protocol.HardMaxFrame)
		if err != nil { // held frames were parsed once already
			break
		}
		if isRequest(f) {
			id := s.newID()
			s.inflight[id] = inflight{kind: reqPlayer, player: f.RequestID, att: a}
			a.owed++
			binary.BigEndian.PutUint32(b[8:12], id)
		}
		s.e.m.toCell.Inc()
		b = b[n:]
	}
	st := a.st
	s.mu.Unlock()
	if len(held) > 0 {
		if err := st.Send(held); err != nil {
			go s.sendFailed(a, err)
		}
	}
	return nil
}

func isRequest(f protocol.Frame) bool { return !f.IsResponse() && f.RequestID != 0 }

// newID returns the next request id the gateway sees. Call with s.mu held.
func (s *session) newID() uint32 {
	for {
		s.nextID++
		if _, used := s.inflight[s.nextID]; s.nextID != 0 && !used {
			return s.nextID
		}
	}
}

// fromPlayer relays one of the authenticated player's frames (raw aliases
// the read buffer, which is the reader's to rewrite).
func (s *session) fromPlayer(f protocol.Frame, raw []byte) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	a := s.att
	if a == nil || !a.ready {
		if s.npending >= s.e.cfg.PendingFrames {
			s.mu.Unlock()
			if isRequest(f) {
				s.toPlayerFrame(codedError(f.RequestID, apierr.Unavailable, "the session is moving to another cell: retry"))
			}
			return
		}
		s.pending = append(s.pending, raw...)
		s.npending++
		s.mu.Unlock()
		return
	}
	if isRequest(f) {
		id := s.newID()
		s.inflight[id] = inflight{kind: reqPlayer, player: f.RequestID, att: a}
		a.owed++
		binary.BigEndian.PutUint32(raw[8:12], id)
	}
	var renew []byte
	if !s.renewing && !s.renewAt.IsZero() && time.Now().After(s.renewAt) {
		s.renewing = true
		id := s.newID()
		s.inflight[id] = inflight{kind: reqResume, att: a}
		renew = protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpResume, RequestID: id}})
	}
	st := a.st
	s.mu.Unlock()
	err := st.Send(raw)
	if err == nil && renew != nil {
		err = st.Send(renew)
	}
	s.e.m.toCell.Inc()
	if err != nil {
		s.sendFailed(a, err)
	}
}

// sendFailed handles a stream that would not take a frame. A dead link
// reports itself (Closed); a gateway that stopped reading this session
// past the write timeout is treated the same way.
func (s *session) sendFailed(a *attachment, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	s.e.log.Warn("edge: gateway stopped reading a session", "cell", a.cell, "player", s.player)
	s.mu.Lock()
	st := a.st
	s.mu.Unlock()
	st.Close("stalled")
	s.detached(a, true)
}

// fromCell takes bytes of the session's frame stream from a gateway, on
// the link's reader goroutine.
func (s *session) fromCell(a *attachment, b []byte) {
	buf := b
	if len(a.partial) > 0 {
		a.partial = append(a.partial, b...)
		buf = a.partial
	}
	for len(buf) > 0 {
		f, n, err := protocol.Parse(buf, protocol.HardMaxFrame)
		if errors.Is(err, protocol.ErrShort) {
			break
		}
		if err != nil {
			s.e.log.Error("edge: malformed frame from a gateway", "cell", a.cell, "error", err)
			s.mu.Lock()
			st := a.st
			s.mu.Unlock()
			if st != nil {
				st.Close("bad frame")
			}
			s.detached(a, true)
			return
		}
		s.cellFrame(a, f, buf[:n])
		buf = buf[n:]
	}
	switch {
	case len(buf) == 0:
		a.partial = a.partial[:0]
		if cap(a.partial) > readBufSize {
			a.partial = nil
		}
	case len(a.partial) > 0: // buf is the tail of partial
		a.partial = a.partial[:copy(a.partial, buf)]
	default:
		a.partial = append(a.partial[:0], buf...)
	}
}

// cellFrame relays one frame from a gateway to the player, or handles it
// when it answers the edge itself.
func (s *session) cellFrame(a *attachment, f protocol.Frame, raw []byte) {
	if f.IsResponse() || (f.Opcode == protocol.OpError && f.RequestID != 0) {
		s.mu.Lock()
		in, ok := s.inflight[f.RequestID]
		if ok && in.att == a {
			delete(s.inflight, f.RequestID)
			if in.kind == reqPlayer {
				s.settled(a)
			}
		} else {
			ok = false // late: already answered with session_moved
		}
		s.mu.Unlock()
		if !ok {
			return
		}
		switch in.kind {
		case reqPlayer:
			s.toPlayer(raw, in.player, true)
		case reqHello, reqAttach:
			s.helloAnswered(a, f, raw, in)
		case reqResume:
			s.renewed(f)
		}
		return
	}
	s.mu.Lock()
	current := s.att == a
	s.mu.Unlock()
	if f.RequestID == 0 {
		switch f.Opcode {
		case protocol.OpReconnect:
			var r protocol.Reconnect
			if current && json.Unmarshal(f.Payload, &r) == nil {
				s.reconnected(a, r)
			}
			return
		case protocol.OpBye, protocol.OpError:
			if reason := goingAway(f); reason != "" {
				s.mu.Lock()
				a.move = reason
				s.mu.Unlock()
				return
			}
			if !current {
				return
			}
		}
	}
	s.toPlayer(raw, 0, false)
}

// goingAway returns why a gateway is closing a session when the reason
// means the gateway is going, not the player: the edge moves the session
// instead of passing the close on.
func goingAway(f protocol.Frame) string {
	var reason string
	if f.Opcode == protocol.OpBye {
		var b protocol.Bye
		_ = json.Unmarshal(f.Payload, &b)
		reason = b.Reason
	} else {
		var eb protocol.ErrorBody
		_ = json.Unmarshal(f.Payload, &eb)
		reason = eb.Code
	}
	switch reason {
	case string(apierr.ShuttingDown), string(apierr.Draining):
		return reason
	}
	return ""
}

// settled counts an answered request of a; with s.mu held.
func (s *session) settled(a *attachment) {
	a.owed--
	if a.owed == 0 && a.retired != nil {
		close(a.retired)
		a.retired = nil
	}
}

// helloAnswered handles the gateway's answer to an attaching Hello.
func (s *session) helloAnswered(a *attachment, f protocol.Frame, raw []byte, in inflight) {
	if f.Opcode == protocol.OpHello && f.IsResponse() {
		var w protocol.Welcome
		if err := json.Unmarshal(f.Payload, &w); err != nil {
			a.result <- apierr.Wrap("edge.attach", apierr.Internal, "malformed welcome from "+a.cell, err)
			return
		}
		s.mu.Lock()
		s.cell, s.sessionID = w.Cell, w.SessionID
		if w.ResumeToken != "" {
			s.resume = w.ResumeToken
			s.planRenewal()
		}
		if w.IdleTimeoutMS > 0 {
			s.idle = time.Duration(w.IdleTimeoutMS)*time.Millisecond + idleSlack
		}
		s.mu.Unlock()
		if in.kind == reqHello {
			s.toPlayer(raw, in.player, true)
		}
		a.result <- nil
		return
	}
	var eb protocol.ErrorBody
	_ = json.Unmarshal(f.Payload, &eb)
	code := apierr.Code(eb.Code)
	if !code.Known() {
		code = apierr.Internal
	}
	if in.kind == reqHello && !tryElsewhere(code) {
		s.toPlayer(raw, in.player, true) // the player's own answer
	}
	a.result <- apierr.New(code, "cell %s refused the session: %s", a.cell, eb.Message)
}

// planRenewal schedules the resume token's renewal at half its life; with
// s.mu held.
func (s *session) planRenewal() {
	s.renewAt = time.Time{}
	c, err := s.e.tokens.Verify(s.resume, token.AudienceResume)
	if err != nil || c.IssuedAt.IsZero() {
		return
	}
	s.renewAt = c.IssuedAt.Add(c.ExpiresAt.Sub(c.IssuedAt) / 2)
}

// renewed takes the answer to an OpResume the edge sent.
func (s *session) renewed(f protocol.Frame) {
	var g protocol.ResumeGrant
	ok := f.Opcode == protocol.OpResume && json.Unmarshal(f.Payload, &g) == nil && g.ResumeToken != ""
	s.mu.Lock()
	s.renewing = false
	if ok {
		s.resume = g.ResumeToken
		s.planRenewal()
	} else {
		s.renewAt = time.Now().Add(renewRetry)
	}
	s.mu.Unlock()
	result := "ok"
	if !ok {
		result = "failed"
	}
	s.e.m.resumeRenewals.WithLabelValues(result).Inc()
}

// detached handles an attachment's end: its stream closed by the gateway
// (lost false) or its link failed (lost true).
func (s *session) detached(a *attachment, lost bool) {
	s.mu.Lock()
	if a.gone {
		s.mu.Unlock()
		return
	}
	a.gone = true
	var failed []uint32
	for id, in := range s.inflight {
		if in.att != a {
			continue
		}
		delete(s.inflight, id)
		switch in.kind {
		case reqPlayer:
			failed = append(failed, in.player)
		case reqResume:
			s.renewing = false
		}
	}
	current := s.att == a
	if current {
		s.att = nil
	}
	for i, o := range s.old {
		if o == a {
			s.old = append(s.old[:i], s.old[i+1:]...)
			break
		}
	}
	ready, move, closing := a.ready, a.move, s.closing
	if a.retired != nil {
		close(a.retired)
		a.retired = nil
	}
	s.mu.Unlock()

	if !ready { // its Hello is still unanswered: the attach in progress decides
		select {
		case a.result <- errLost:
		default:
		}
		return
	}
	for _, id := range failed {
		s.e.m.interrupted.Inc()
		s.toPlayerFrame(errorFrame(id, protocol.ErrorBody{Code: string(apierr.SessionMoved),
			Message:   "the session moved to another cell while this request was in flight; it may or may not have taken effect",
			Retryable: true}))
	}
	if !current || closing {
		return
	}
	switch {
	case move != "":
		// The gateway said why it is going before its link went too.
		s.goReattach(a.cell, move, "")
	case lost:
		s.goReattach(a.cell, "failover", "")
	default:
		// The gateway ended the session itself (idle timeout, a newer
		// session, the player's bye): its last frames are already queued.
		s.close(nil, endGatewayClosed)
	}
}

// reconnected handles a gateway's Reconnect: the session moves, and the
// old attachment keeps answering what it owes for a while.
func (s *session) reconnected(a *attachment, r protocol.Reconnect) {
	s.mu.Lock()
	if s.att != a || s.closing || s.moving {
		s.mu.Unlock()
		return
	}
	if r.ResumeToken != "" {
		s.resume = r.ResumeToken
		s.planRenewal()
	}
	s.att = nil
	s.old = append(s.old, a)
	s.mu.Unlock()
	reason := r.Reason
	if reason == "" {
		reason = "draining"
	}
	s.goReattach(a.cell, reason, r.Cell)
	s.e.wg.Add(1)
	go s.retire(a)
}

// retire closes an attachment the session moved away from once it owes no
// answer, or after Config.RetireGrace; what is still owed then is
// answered with session_moved.
func (s *session) retire(a *attachment) {
	defer s.e.wg.Done()
	s.mu.Lock()
	var wait chan struct{}
	if a.owed > 0 && !a.gone {
		wait = make(chan struct{})
		a.retired = wait
	}
	s.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(s.e.cfg.RetireGrace)
		select {
		case <-wait:
		case <-t.C:
		case <-s.ended:
		}
		t.Stop()
	}
	s.mu.Lock()
	st := a.st
	s.mu.Unlock()
	st.Close("moved")
	s.detached(a, false)
}

// move is a request to move the session.
type move struct{ from, reason, target string }

// goReattach starts moving the session, or, when a move is already
// running (the cell it just reached failed in turn), has that one start
// this one when it is done.
func (s *session) goReattach(from, reason, target string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if s.moving {
		s.again = &move{from, reason, target}
		s.mu.Unlock()
		return
	}
	s.moving = true
	s.mu.Unlock()
	s.e.wg.Add(1)
	go s.reattach(from, reason, target)
}

// reattach moves the session to another gateway with its resume token,
// the player's connection staying open, trying the cells in order and
// again with backoff until Config.AttachTimeout.
func (s *session) reattach(from, reason, target string) {
	defer s.e.wg.Done()
	defer func() {
		s.mu.Lock()
		s.moving = false
		next := s.again
		s.again = nil
		// Only when the session is left without a gateway: a move that
		// arrived while this one ran and was overtaken by its result is moot.
		if next == nil || s.att != nil || s.closing {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.goReattach(next.from, next.reason, next.target)
	}()
	start := time.Now()
	var route []string
	switch {
	case target != "" && target != from:
		route = s.e.route(target)
	case reason == "failover":
		// The link died: the cell is presumed down, as the router would
		// after its probes; the cell itself is the last resort (another
		// of its gateway processes may live).
		route = append(s.e.failover(from), from)
	case reason == "rehome" && target == "":
		route = s.e.route(s.e.homeOf(s.e.base, s.player, from))
	default:
		// Draining or stopping: another gateway process of the same cell
		// first, then its failover.
		route = append([]string{from}, s.e.failover(from)...)
	}
	backoff := 25 * time.Millisecond
	var last error
	for {
		for _, cell := range route {
			s.mu.Lock()
			tok := s.resume
			s.mu.Unlock()
			if tok == "" {
				s.giveUp(reason, from, apierr.New(apierr.Unauthenticated, "no resume token to move the session with"))
				return
			}
			hello, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, ResumeToken: tok, Client: "livecell-edge/" + s.e.cfg.ID})
			a, err := s.attach(cell, protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello}, Payload: hello}), reqAttach, 0)
			if err == nil {
				s.moved(a, from, reason, time.Since(start))
				return
			}
			if errors.Is(err, errSessionClosed) {
				return
			}
			if !tryElsewhere(apierr.CodeOf(err)) {
				s.giveUp(reason, from, err)
				return
			}
			last = err
		}
		if time.Since(start) > s.e.cfg.AttachTimeout {
			s.giveUp(reason, from, apierr.Wrap("edge.reattach", apierr.NoHealthyCell, "no cell took the session", last))
			return
		}
		select {
		case <-time.After(backoff):
		case <-s.ended:
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// moved tells the player where its session is now.
func (s *session) moved(a *attachment, from, reason string, took time.Duration) {
	s.e.m.reattaches.WithLabelValues(reason, "ok").Inc()
	s.e.m.reattachTime.Observe(took.Seconds())
	s.mu.Lock()
	data, _ := json.Marshal(protocol.SessionMoved{Reason: reason, FromCell: from, Cell: s.cell, SessionID: s.sessionID, ResumeToken: s.resume})
	player := s.player
	s.mu.Unlock()
	p, _ := json.Marshal(protocol.Push{Topic: protocol.TopicSessionMoved, Data: data})
	s.toPlayerFrame(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPush}, Payload: p})
	s.e.log.Info("edge: session moved", "player", player, "from", from, "to", a.cell, "reason", reason, "took", took)
}

// giveUp ends a session no cell would take: the player is told to
// reconnect on its own (logging in again if its credentials were refused).
func (s *session) giveUp(reason, from string, err error) {
	s.e.m.reattaches.WithLabelValues(reason, "failed").Inc()
	s.e.log.Warn("edge: session could not be moved", "player", s.player, "from", from, "reason", reason, "error", err)
	s.mu.Lock()
	tok := s.resume
	s.mu.Unlock()
	p, _ := json.Marshal(protocol.Reconnect{Reason: "failover", RetryAfterMS: 500, ResumeToken: tok})
	s.toPlayerFrame(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}, Payload: p})
	f := codedError(0, apierr.CodeOf(err), apierr.MessageOf(err))
	s.close(&f, endNoCell)
}

// tellReconnect asks the player to reconnect elsewhere (the edge drains).
func (s *session) tellReconnect(reason string) {
	s.mu.Lock()
	tok := s.resume
	s.mu.Unlock()
	p, _ := json.Marshal(protocol.Reconnect{Reason: reason, RetryAfterMS: 500, ResumeToken: tok})
	s.toPlayerFrame(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}, Payload: p})
}

// toPlayer queues raw for the player, with its request id replaced by id
// when rewrite is set.
func (s *session) toPlayer(raw []byte, id uint32, rewrite bool) {
	s.omu.Lock()
	if s.oclosed {
		s.omu.Unlock()
		return
	}
	if s.queued >= s.e.cfg.OutboundQueue {
		s.omu.Unlock()
		f := errorFrame(0, protocol.ErrorBody{Code: string(apierr.SlowConsumer),
			Message: "outbound queue full: the client is not reading", Retryable: true})
		s.closeWith(&f, endSlowConsumer, true)
		return
	}
	off := len(s.out)
	s.out = append(s.out, raw...)
	if rewrite {
		binary.BigEndian.PutUint32(s.out[off+8:off+12], id)
	}
	s.queued++
	s.omu.Unlock()
	s.e.m.toPlayer.Inc()
	s.signal()
}

func (s *session) toPlayerFrame(f protocol.Frame) { s.toPlayer(protocol.Encode(f), 0, false) }

func (s *session) close(final *protocol.Frame, reason string) { s.closeWith(final, reason, false) }

// closeWith ends the session: final (if any) follows the frames already
// queued (drop discards those), the writer flushes and closes, and every
// attachment's stream is closed, which the gateway sees as the player
// leaving.
func (s *session) closeWith(final *protocol.Frame, reason string, drop bool) {
	s.omu.Lock()
	if s.oclosed {
		s.omu.Unlock()
		return
	}
	s.oclosed = true
	if drop {
		s.out = s.out[:0]
	}
	if final != nil {
		s.out = protocol.AppendFrame(s.out, *final)
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(closeFlush))
	close(s.ended)
	s.omu.Unlock()
	s.signal()

	s.mu.Lock()
	s.closing = true
	atts := s.old
	if s.att != nil {
		atts = append(atts, s.att)
	}
	s.att, s.old, s.pending = nil, nil, nil
	var streams []streamSender
	for _, a := range atts {
		a.gone = true
		if a.st != nil {
			streams = append(streams, a.st)
		}
	}
	clear(s.inflight)
	player := s.player
	s.mu.Unlock()
	for _, st := range streams {
		st.Close(reason)
	}
	s.e.remove(s)
	s.e.m.closes.WithLabelValues(reason).Inc()
	s.e.log.LogAttrs(s.e.base, slog.LevelDebug, "edge: session closed",
		slog.String("player", player), slog.String("transport", s.tr), slog.String("reason", reason))
}

// writeLoop hands queued frames to the player, one write per batch.
func (s *session) writeLoop() {
	defer s.e.wg.Done()
	for {
		s.omu.Lock()
		for len(s.out) == 0 && !s.oclosed {
			s.omu.Unlock()
			<-s.wake
			s.omu.Lock()
		}
		batch := s.out
		s.out, s.spare, s.queued = s.spare[:0], nil, 0
		closed := s.oclosed
		if len(batch) > 0 && !closed {
			_ = s.nc.SetWriteDeadline(time.Now().Add(s.e.cfg.WriteTimeout))
		}
		s.omu.Unlock()
		if len(batch) == 0 { // closed and flushed
			s.finish(true)
			return
		}
		_, err := s.nc.Write(batch)
		if cap(batch) <= 64<<10 {
			s.omu.Lock()
			s.spare = batch[:0]
			s.omu.Unlock()
		}
		if err != nil {
			s.closeWith(nil, endClientLeft, true)
			s.finish(false)
			return
		}
	}
}

// finish releases the player's connection, gracefully (FIN, then a linger
// for the player's own close) when everything was written.
func (s *session) finish(graceful bool) {
	if graceful {
		if cw, ok := s.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			_ = s.nc.SetReadDeadline(time.Now().Add(closeLinger))
			t := time.NewTimer(closeLinger)
			select {
			case <-s.readDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = s.nc.Close()
}

// errorFrame builds an error frame: answering a request (its id and the
// response flag) or connection-level (id 0).
func errorFrame(reqID uint32, body protocol.ErrorBody) protocol.Frame {
	p, _ := json.Marshal(body) // strings and numbers only
	h := protocol.Header{Opcode: protocol.OpError, RequestID: reqID}
	if reqID != 0 {
		h.Flags = protocol.FlagResponse
	}
	return protocol.Frame{Header: h, Payload: p}
}

func codedError(reqID uint32, code apierr.Code, msg string) protocol.Frame {
	return errorFrame(reqID, protocol.ErrorBody{Code: string(code), Message: msg, Retryable: code.Retryable()})
}

func byeFrame(reason string) protocol.Frame {
	p, _ := json.Marshal(protocol.Bye{Reason: reason})
	return protocol.Frame{Header: protocol.Header{Opcode: protocol.OpBye}, Payload: p}
}
