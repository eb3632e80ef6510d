package benchrig

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// proc is a server or client role run in-process on pipes, as the rig
// runs it in a child process.
type proc struct {
	t   *testing.T
	in  *io.PipeWriter
	out *bufio.Scanner
	err chan error
}

func startRole(t *testing.T, run func(context.Context, io.Reader, io.Writer) error) *proc {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &proc{t: t, in: inW, out: bufio.NewScanner(outR), err: make(chan error, 1)}
	p.out.Buffer(make([]byte, 1<<20), 64<<20)
	go func() {
		err := run(t.Context(), inR, outW)
		outW.CloseWithError(io.EOF)
		p.err <- err
	}()
	t.Cleanup(func() {
		inW.Close()
		if err := <-p.err; err != nil {
			t.Errorf("role ended with %v", err)
		}
	})
	return p
}

func (p *proc) send(c command) {
	p.t.Helper()
	b, _ := json.Marshal(c)
	if _, err := fmt.Fprintf(p.in, "%s\n", b); err != nil {
		p.t.Fatalf("send %v: %v", c, err)
	}
}

func (p *proc) expect(want string) event {
	p.t.Helper()
	if !p.out.Scan() {
		p.t.Fatalf("no %q event: %v", want, p.out.Err())
	}
	var ev event
	if err := json.Unmarshal(p.out.Bytes(), &ev); err != nil || ev.Event != want {
		p.t.Fatalf("got %s (%v), want a %q event", p.out.Bytes(), err, want)
	}
	return ev
}

// The rig's roles end to end on a real gateway: sessions authenticate with
// minted tokens, every echo comes back and is timed, pushes arrive.
func TestRolesEndToEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the load generator needs epoll")
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := writeKey(keyFile); err != nil {
		t.Fatal(err)
	}
	server := startRole(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		return RunServer(ctx, ServerConfig{Listen: "127.0.0.1:0", KeyFile: keyFile}, in, out)
	})
	ready := server.expect("ready")
	const sessions = 40
	client := startRole(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		return RunClient(ctx, ClientConfig{Target: ready.Addr, Source: "127.0.0.1", Sessions: sessions, KeyFile: keyFile}, in, out)
	})
	if ev := client.expect("connected"); ev.Sessions != sessions || ev.Failed != 0 {
		t.Fatalf("connected %d sessions, %d failed (%v); want %d, 0", ev.Sessions, ev.Failed, ev.Errors, sessions)
	}

	client.send(command{Cmd: "rtt", Rate: 400, Seconds: 0.5})
	rtt := client.expect("rtt")
	if rtt.Sent != 200 || rtt.Received != rtt.Sent {
		t.Errorf("round trips: sent %d, received %d; want 200 each", rtt.Sent, rtt.Received)
	}
	if rtt.Hist == nil || rtt.Hist.Counts == nil {
		t.Fatal("round-trip event carries no histogram")
	}
	if h := newHist(); true {
		merge(h, rtt.Hist)
		if h.TotalCount() != rtt.Received || h.Max() <= 0 {
			t.Errorf("histogram holds %d values (max %d µs), want %d positive", h.TotalCount(), h.Max(), rtt.Received)
		}
	}

	server.send(command{Cmd: "push", Rate: 400, Seconds: 0.5})
	pushed := server.expect("pushed")
	if pushed.Sent != 200 || pushed.Pushes != 200 {
		t.Errorf("pushes made %d, queued %d; want 200 each", pushed.Sent, pushed.Pushes)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got int64
	for got < pushed.Pushes && time.Now().Before(deadline) {
		client.send(command{Cmd: "counts"})
		got += client.expect("counts").Pushes
		time.Sleep(20 * time.Millisecond)
	}
	if got != pushed.Pushes {
		t.Errorf("client read %d pushes, want %d", got, pushed.Pushes)
	}

	server.send(command{Cmd: "heap"})
	if ev := server.expect("heap"); ev.Sessions != sessions || ev.HeapBytes <= 0 {
		t.Errorf("heap event: %d sessions, %d bytes; want %d and a positive heap", ev.Sessions, ev.HeapBytes, sessions)
	}
	server.send(command{Cmd: "bogus"})
	if ev := server.expect("error"); ev.Message == "" {
		t.Error("unknown command: error event without a message")
	}
}

// A gateway that is not there shows up as errors, never as a crash.
func TestClientReportsRefusedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the load generator needs epoll")
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := writeKey(keyFile); err != nil {
		t.Fatal(err)
	}
	port, err := freePort() // nothing listens there any more
	if err != nil {
		t.Fatal(err)
	}
	client := startRole(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		return RunClient(ctx, ClientConfig{Target: fmt.Sprintf("127.0.0.1:%d", port), Source: "127.0.0.1", Sessions: 5, KeyFile: keyFile}, in, out)
	})
	ev := client.expect("connected")
	if ev.Sessions != 0 || ev.Failed != 5 || ev.Errors["connection refused"] != 5 {
		t.Errorf("connected %d, failed %d, errors %v; want 0, 5 and 5 refused", ev.Sessions, ev.Failed, ev.Errors)
	}
}

func TestStamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"t":1700000000123456789}`, 1700000000123456789, true},
		{`{"topic":"bench","id":"3","data":{"t":42}}`, 42, true},
		{`{"t":}`, 0, false},
		{`{"x":1}`, 0, false},
		{``, 0, false},
	} {
		got, ok := stamp([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("stamp(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestProcReaders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("procRSS(self) = %d, %v; want at least 1 MiB", rss, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU(self): %v", err)
	}
	ss, err := readSockstat()
	if err != nil || ss.inuse < 0 {
		t.Errorf("readSockstat = %+v, %v", ss, err)
	}
	if _, err := procRSS(-1); err == nil {
		t.Error("procRSS(-1) succeeded, want an error")
	}
}
