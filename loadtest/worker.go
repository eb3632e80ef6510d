package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/loadtest/report"
	"github.com/livecell/livecell/loadtest/stats"
)

// The worker protocol: JSON lines over a worker process's standard input
// and output.
//
//	parent → worker   {shardSpec}                    what to play
//	worker → parent   {"type":"ready","players":n}   ready to start
//	parent → worker   {"start":"<RFC 3339 time>"}    when to start
//	worker → parent   {"type":"interval",...}        one per tick
//	worker → parent   {"type":"done"} or {"type":"error","error":"…"}
//
// The parent closing the worker's standard input asks it to stop early:
// it ends its sessions, sends its last interval and exits.
const (
	lineReady    = "ready"
	lineInterval = "interval"
	lineDone     = "done"
	lineError    = "error"
	// maxLine bounds a protocol line: a spec carries the scenario file
	// (at most 1 MiB) and an interval a few histograms per operation.
	maxLine = 8 << 20
	// readyTimeout bounds a worker's start-up.
	readyTimeout = 30 * time.Second
	// stopGrace is how long a worker asked to stop gets before SIGKILL.
	stopGrace = 15 * time.Second
)

type workerLine struct {
	Type     string          `json:"type"`
	Players  int             `json:"players,omitempty"`
	Interval *stats.Interval `json:"interval,omitempty"`
	Error    string          `json:"error,omitempty"`
}

type startLine struct {
	Start time.Time `json:"start"`
}

// WorkerOptions configure a worker process.
type WorkerOptions struct {
	// Transports as in Config.Transports: the parent's cannot cross the
	// process boundary, so the worker's main names its own.
	Transports map[string]Transport
	Logger     *slog.Logger // to standard error: standard output is the protocol's
}

// ServeWorker runs one shard of a sharded run: it reads its share from in,
// plays it, and streams what it records to out. The hidden `livecell
// loadtest worker` subcommand calls it with the process's standard input
// and output.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer, o WorkerOptions) error {
	r := bufio.NewReaderSize(in, 64<<10)
	w := &lineWriter{enc: json.NewEncoder(out)}
	var spec shardSpec
	if err := readLine(r, &spec); err != nil {
		return fmt.Errorf("loadtest worker: read the spec: %w", err)
	}
	eng, err := newEngine(spec, o.Transports)
	if err != nil {
		_ = w.write(workerLine{Type: lineError, Error: err.Error()})
		return err
	}
	if err := w.write(workerLine{Type: lineReady, Players: len(eng.players())}); err != nil {
		return err
	}
	var st startLine
	if err := readLine(r, &st); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // the parent gave up before the start
		}
		return fmt.Errorf("loadtest worker: read the start: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Anything more on stdin, or its end, means stop.
		_, _ = r.ReadByte()
		cancel()
	}()
	err = eng.run(runCtx, st.Start, func(iv stats.Interval) error {
		return w.write(workerLine{Type: lineInterval, Interval: &iv})
	})
	if err != nil {
		_ = w.write(workerLine{Type: lineError, Error: err.Error()})
		return err
	}
	return w.write(workerLine{Type: lineDone})
}

type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *lineWriter) write(l workerLine) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(l)
}

// readLine reads one JSON line into v.
func readLine(r *bufio.Reader, v any) error {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && (len(bytes.TrimSpace(buf)) == 0 || err != io.EOF) {
			return err
		}
		break
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("malformed line: %w", err)
	}
	return nil
}

// SelfWorker returns a Config.WorkerCommand that runs this executable with
// args (for the livecell binary: "loadtest", "worker").
func SelfWorker(args ...string) (func(context.Context) *exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("loadtest: find this executable: %w", err)
	}
	return func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, exe, args...) }, nil
}

// shardEvent is what a shard reports to the coordinator.
type shardEvent struct {
	shard int
	iv    *stats.Interval
	done  bool
	err   error
}

// shardRunner is one process's share of a run, in this process or in a
// worker.
type shardRunner interface {
	// prepare gets the shard ready to start; an error means the run
	// cannot start.
	prepare(ctx context.Context) error
	// run plays the shard from start, sends its intervals and then one
	// done event.
	run(ctx context.Context, start time.Time, events chan<- shardEvent)
	// abort releases a prepared shard that will not run.
	abort()
	pid() int
	info() report.Process
}

// localShard runs in this process.
type localShard struct {
	eng *engine
}

func (l *localShard) prepare(context.Context) error { return nil }
func (l *localShard) abort()                        {}
func (l *localShard) pid() int                      { return os.Getpid() }

func (l *localShard) run(ctx context.Context, start time.Time, events chan<- shardEvent) {
	shard := l.eng.spec.Shard
	err := l.eng.run(ctx, start, func(iv stats.Interval) error {
		events <- shardEvent{shard: shard, iv: &iv}
		return nil
	})
	events <- shardEvent{shard: shard, done: true, err: err}
}

func (l *localShard) info() report.Process {
	return report.Process{Shard: l.eng.spec.Shard, PID: os.Getpid(), Source: l.eng.spec.Source, Players: len(l.eng.players())}
}

// workerShard runs in a worker process.
type workerShard struct {
	spec    shardSpec
	command func(context.Context) *exec.Cmd
	log     *slog.Logger

	cmd     *exec.Cmd
	kill    context.CancelFunc // ends the process's context: SIGKILL
	stdin   io.WriteCloser
	stdout  *os.File
	out     *bufio.Reader
	stderr  *tail
	players int
	exited  chan struct{} // closed once the process has exited
	waitErr error         // why, set before exited closes
}

func (w *workerShard) prepare(ctx context.Context) error {
	// The process outlives ctx's cancellation by design: the parent asks
	// it to stop (closing stdin) and only kills it if it does not.
	pctx, kill := context.WithCancel(context.WithoutCancel(ctx))
	cmd := w.command(pctx)
	w.cmd, w.kill, w.stderr = cmd, kill, &tail{max: 8 << 10}
	cmd.Stderr = w.stderr
	var err error
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		kill()
		return err
	}
	// Our own pipe rather than StdoutPipe: Wait, which runs as soon as the
	// process exits, would close StdoutPipe's reading end and lose the
	// last lines still in it.
	stdout, pw, err := os.Pipe()
	if err != nil {
		kill()
		return err
	}
	cmd.Stdout = pw
	w.out = bufio.NewReaderSize(stdout, 64<<10)
	err = cmd.Start()
	pw.Close() // the child holds its own copy
	if err != nil {
		stdout.Close()
		kill()
		return fmt.Errorf("loadtest: start worker %d: %w", w.spec.Shard, err)
	}
	w.stdout = stdout
	w.exited = make(chan struct{})
	go func() {
		w.waitErr = w.cmd.Wait() // also waits for stderr to be copied
		close(w.exited)
		kill()
	}()
	spec, err := json.Marshal(w.spec)
	if err == nil {
		_, err = w.stdin.Write(append(spec, '\n'))
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("loadtest: worker %d: send the spec: %w%s", w.spec.Shard, err, w.stderr.suffix())
	}
	ready := make(chan error, 1)
	go func() {
		var l workerLine
		err := readLine(w.out, &l)
		switch {
		case err != nil:
			ready <- fmt.Errorf("no answer: %w", err)
		case l.Type == lineError:
			ready <- errors.New(l.Error)
		case l.Type != lineReady:
			ready <- fmt.Errorf("answered %q, want %q", l.Type, lineReady)
		default:
			w.players = l.Players
			ready <- nil
		}
	}()
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = fmt.Errorf("not ready within %s", readyTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("loadtest: worker %d: %w%s", w.spec.Shard, err, w.stderr.suffix())
	}
	return nil
}

// abortGrace is how long a worker that will not run gets to exit.
const abortGrace = 2 * time.Second

func (w *workerShard) abort() {
	w.stop(abortGrace)
	w.release()
}

// stop asks the worker to stop (closing its stdin), waits up to grace
// for it to exit, then kills it, and returns once it has exited.
func (w *workerShard) stop(grace time.Duration) {
	w.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-w.exited:
	case <-t.C:
		w.kill()
		<-w.exited
	}
}

// release closes this side of the worker's output once it is read.
func (w *workerShard) release() { w.stdout.Close() }

func (w *workerShard) run(ctx context.Context, start time.Time, events chan<- shardEvent) {
	shard := w.spec.Shard
	err := w.serve(ctx, start, events)
	events <- shardEvent{shard: shard, done: true, err: err}
}

func (w *workerShard) serve(ctx context.Context, start time.Time, events chan<- shardEvent) error {
	line, _ := json.Marshal(startLine{Start: start})
	if _, err := w.stdin.Write(append(line, '\n')); err != nil {
		w.abort()
		return fmt.Errorf("send the start: %w%s", err, w.stderr.suffix())
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			w.stop(stopGrace)
		case <-stopped:
		}
	}()
	var protoErr error
	finished := false
	for {
		var l workerLine
		err := readLine(w.out, &l)
		if err != nil {
			if !errors.Is(err, io.EOF) && protoErr == nil {
				protoErr = err
			}
			break
		}
		switch l.Type {
		case lineInterval:
			if l.Interval != nil {
				l.Interval.Shard = w.spec.Shard // a worker speaks for its own shard only
				events <- shardEvent{shard: w.spec.Shard, iv: l.Interval}
			}
		case lineDone:
			finished = true
		case lineError:
			protoErr = errors.New(l.Error)
		}
	}
	w.stop(stopGrace)
	w.release()
	switch {
	case protoErr != nil:
		return fmt.Errorf("%w%s", protoErr, w.stderr.suffix())
	case w.waitErr != nil:
		return fmt.Errorf("exited: %w%s", w.waitErr, w.stderr.suffix())
	case !finished:
		return fmt.Errorf("ended without finishing%s", w.stderr.suffix())
	}
	return nil
}

func (w *workerShard) pid() int {
	if w.cmd != nil && w.cmd.Process != nil {
		return w.cmd.Process.Pid
	}
	return 0
}

func (w *workerShard) info() report.Process {
	return report.Process{Shard: w.spec.Shard, PID: w.pid(), Source: w.spec.Source, Players: w.players}
}

// tail keeps the end of a worker's standard error for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// suffix is ": <last lines of stderr>" or "".
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; its last output: " + strings.Join(lines, " | ")
}
