package benchrig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// ClientConfig is one load-generating process of the rig.
type ClientConfig struct {
	Target      string // gateway host:port
	Source      string // local IP to dial from, e.g. 127.0.0.3
	Sessions    int
	FirstPlayer int    // players are bench-<FirstPlayer>…
	KeyFile     string // PEM signing key to mint the players' tokens
}

const dialConcurrency = 64

// clientConn is one session of the load generator.
type clientConn struct {
	fd      int
	nc      net.Conn // owns the descriptor; the loop reads it raw
	pending []byte   // loop only
	dead    atomic.Bool
}

// client runs every session of the process on one epoll loop.
type client struct {
	cfg   ClientConfig
	epfd  int
	conns []*clientConn
	byFD  map[int]*clientConn

	authed, failed atomic.Int64
	ready          chan struct{} // closed when every session answered its hello

	mu       sync.Mutex
	errs     map[string]int
	rtt      *hdrhistogram.Histogram
	received int64
	pushHist *hdrhistogram.Histogram
	pushes   int64
	// Unix nanoseconds of the last answer and push read: throughput counts
	// until then, so a backlog drained after a phase is not mistaken for
	// speed.
	lastRTT, lastPush int64
}

// RunClient opens cfg.Sessions sessions, reports, and obeys the parent's
// commands on in until it says stop or in ends.
func RunClient(ctx context.Context, cfg ClientConfig, in io.Reader, out io.Writer) error {
	ks, err := token.LoadKeySet(cfg.KeyFile)
	if err != nil {
		return err
	}
	signer, err := token.NewSigner(ks, nil)
	if err != nil {
		return err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("benchrig: epoll_create: %w", err)
	}
	defer unix.Close(epfd)
	c := &client{cfg: cfg, epfd: epfd, byFD: map[int]*clientConn{}, ready: make(chan struct{}),
		errs: map[string]int{}, rtt: newHist(), pushHist: newHist()}
	em := &emitter{w: out}
	loopDone := make(chan struct{})
	lctx, stopLoop := context.WithCancel(ctx)
	defer func() {
		stopLoop()
		<-loopDone
		for _, cc := range c.conns {
			_ = cc.nc.Close()
		}
	}()

	start := time.Now()
	c.connect(ctx, signer)
	go func() {
		defer close(loopDone)
		c.loop(lctx)
	}()
	wait := time.NewTimer(time.Minute)
	select {
	case <-c.ready:
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()
	c.mu.Lock()
	errs := maps(c.errs)
	c.mu.Unlock()
	em.emit(event{Event: "connected", PID: os.Getpid(), Sessions: int(c.authed.Load()), Failed: cfg.Sessions - int(c.authed.Load()),
		Errors: errs, Seconds: time.Since(start).Seconds()})

	return readCommands(in, func(cmd command) {
		switch cmd.Cmd {
		case "rtt":
			em.emit(c.rttPhase(ctx, cmd.Rate, cmd.Seconds))
		case "counts":
			c.mu.Lock()
			ev := event{Event: "counts", Pushes: c.pushes, Hist: c.pushHist.Export(), Errors: maps(c.errs), LastNS: c.lastPush}
			c.pushes, c.pushHist = 0, newHist()
			c.mu.Unlock()
			em.emit(ev)
		default:
			em.emit(event{Event: "error", Message: "unknown command " + cmd.Cmd})
		}
	})
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *client) countErr(kind string) {
	c.mu.Lock()
	c.errs[kind]++
	c.mu.Unlock()
}

// connect dials every session, registers it with the loop and sends its
// hello; dial failures are counted by kind, never fatal.
func (c *client) connect(ctx context.Context, signer *token.Signer) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.cfg.Source)}}
	type dialed struct {
		cc  *clientConn
		err error
	}
	results := make(chan dialed)
	sem := make(chan struct{}, dialConcurrency)
	go func() {
		for i := range c.cfg.Sessions {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				cc, err := c.dialOne(ctx, &d, signer, fmt.Sprintf("bench-%d", c.cfg.FirstPlayer+i))
				results <- dialed{cc, err}
			}()
		}
	}()
	for range c.cfg.Sessions {
		r := <-results
		if r.err != nil {
			c.countErr(errKind(r.err))
			continue
		}
		c.conns = append(c.conns, r.cc)
		c.byFD[r.cc.fd] = r.cc
	}
	if len(c.conns) == 0 {
		close(c.ready)
	}
}

func (c *client) dialOne(ctx context.Context, d *net.Dialer, signer *token.Signer, player string) (*clientConn, error) {
	tok, _, err := signer.IssuePlayer(player, Cell, 2*time.Hour)
	if err != nil {
		return nil, err
	}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Target)
	if err != nil {
		return nil, err
	}
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		nc.Close()
		return nil, err
	}
	fd := -1
	_ = rc.Control(func(u uintptr) { fd = int(u) })
	cc := &clientConn{fd: fd, nc: nc}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		nc.Close()
		return nil, err
	}
	hello, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Token: tok, Client: "benchrig"})
	if _, err := nc.Write(protocol.Encode(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: 1}, Payload: hello})); err != nil {
		nc.Close()
		return nil, err
	}
	return cc, nil
}

// errKind names a failure for the report: an apierr code, or the socket
// error's errno name.
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	if code := apierr.CodeOf(err); code != apierr.Internal {
		return string(code)
	}
	return "other"
}

// loop reads every session's frames until ctx ends.
func (c *client) loop(ctx context.Context) {
	evs := make([]unix.EpollEvent, 512)
	buf := make([]byte, 256<<10)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(c.epfd, evs, 50)
		if err != nil && !errors.Is(err, unix.EINTR) {
			c.countErr("epoll_wait")
			return
		}
		for i := range max(n, 0) {
			if cc := c.byFD[int(evs[i].Fd)]; cc != nil {
				c.read(cc, buf)
			}
		}
	}
}

func (c *client) read(cc *clientConn, buf []byte) {
	n, err := unix.Read(cc.fd, buf)
	if n <= 0 {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return
		}
		kind := "closed_by_gateway"
		if err != nil {
			kind = err.Error()
		}
		c.kill(cc, kind)
		return
	}
	data := buf[:n]
	if cc.pending != nil {
		cc.pending = append(cc.pending, data...)
		data = cc.pending
	}
	now := time.Now().UnixNano()
	off := 0
	for off < len(data) {
		f, k, err := protocol.Parse(data[off:], protocol.HardMaxFrame)
		if errors.Is(err, protocol.ErrShort) {
			break
		}
		if err != nil {
			c.kill(cc, "bad_frame")
			return
		}
		off += k
		c.frame(cc, f, now)
	}
	if off == len(data) {
		cc.pending = nil
	} else {
		cc.pending = append([]byte(nil), data[off:]...)
	}
}

func (c *client) kill(cc *clientConn, kind string) {
	if cc.dead.Swap(true) {
		return
	}
	_ = unix.EpollCtl(c.epfd, unix.EPOLL_CTL_DEL, cc.fd, nil)
	c.countErr(kind)
	if c.authed.Load()+c.failed.Add(1) == int64(len(c.conns)) {
		c.closeReady()
	}
}

func (c *client) closeReady() {
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

func (c *client) frame(cc *clientConn, f protocol.Frame, now int64) {
	switch {
	case f.Opcode == protocol.OpHello && f.IsResponse():
		if c.authed.Add(1)+c.failed.Load() == int64(len(c.conns)) {
			c.closeReady()
		}
	case f.Opcode == protocol.OpEcho && f.IsResponse():
		if t, ok := stamp(f.Payload); ok {
			c.mu.Lock()
			_ = c.rtt.RecordValue(max(1, (now-t)/1e3))
			c.received++
			c.lastRTT = now
			c.mu.Unlock()
		}
	case f.Opcode == protocol.OpPush:
		t, ok := stamp(f.Payload)
		c.mu.Lock()
		c.pushes++
		c.lastPush = now
		if ok {
			_ = c.pushHist.RecordValue(max(1, (now-t)/1e3))
		}
		c.mu.Unlock()
	case f.Opcode == protocol.OpError:
		var body protocol.ErrorBody
		_ = json.Unmarshal(f.Payload, &body)
		c.countErr(body.Code)
		if f.RequestID == 1 && !cc.dead.Load() { // the hello was refused
			c.kill(cc, "hello_refused")
		}
	}
}

// stamp finds the "t" field (Unix nanoseconds) in a payload.
func stamp(p []byte) (int64, bool) {
	i := bytes.Index(p, []byte(`"t":`))
	if i < 0 {
		return 0, false
	}
	var t int64
	digits := 0
	for _, b := range p[i+4:] {
		if b < '0' || b > '9' {
			break
		}
		t = t*10 + int64(b-'0')
		digits++
	}
	return t, digits > 0
}

// rttPhase sends OpEcho requests round robin over the live sessions at
// rate per second for seconds. Each carries its intended send time: a
// request the sender could not send on time still counts from then.
func (c *client) rttPhase(ctx context.Context, rate, seconds float64) event {
	c.mu.Lock()
	c.rtt, c.received = newHist(), 0
	c.mu.Unlock()
	var live []*clientConn
	for _, cc := range c.conns {
		if !cc.dead.Load() {
			live = append(live, cc)
		}
	}
	ev := event{Event: "rtt", Sessions: len(live)}
	if len(live) == 0 || rate <= 0 {
		return ev
	}
	start := time.Now()
	total := int64(rate * seconds)
	interval := float64(time.Second) / rate
	var frame []byte
	var sent int64
	t := time.NewTicker(time.Millisecond)
	for sent < total && ctx.Err() == nil {
		due := min(total, int64(float64(time.Since(start))/interval)+1)
		for ; sent < due; sent++ {
			cc := live[sent%int64(len(live))]
			if cc.dead.Load() {
				continue
			}
			intended := start.Add(time.Duration(float64(sent) * interval)).UnixNano()
			frame = protocol.AppendFrame(frame[:0], protocol.Frame{
				Header:  protocol.Header{Opcode: protocol.OpEcho, RequestID: uint32(sent) + 2},
				Payload: fmt.Appendf(nil, `{"t":%d}`, intended),
			})
			if _, err := unix.Write(cc.fd, frame); err != nil {
				c.countErr("send_" + errKind(err))
			}
		}
		<-t.C
	}
	t.Stop()
	ev.Seconds = time.Since(start).Seconds()
	deadline := time.Now().Add(replyGrace)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		done := c.received >= sent
		c.mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	ev.Sent, ev.Received, ev.Hist, ev.Errors, ev.LastNS = sent, c.received, c.rtt.Export(), maps(c.errs), c.lastRTT
	c.mu.Unlock()
	return ev
}

func (c ClientConfig) args() []string {
	return []string{"--role=client", "--target=" + c.Target, "--source=" + c.Source,
		"--client-sessions=" + fmt.Sprint(c.Sessions), "--first-player=" + fmt.Sprint(c.FirstPlayer), "--key-file=" + c.KeyFile}
}
