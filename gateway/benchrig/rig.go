package benchrig

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/livecell/livecell/gateway"
	"github.com/livecell/livecell/internal/token"
)

// maxPerProcess keeps every process of the rig well under the 20,000
// descriptors a process may hold on these machines.
const maxPerProcess = 15_000

// Config is one run of the rig.
type Config struct {
	Sessions int
	Servers  int    // gateway processes; 0: enough for maxPerProcess each
	Clients  int    // load-generator processes; 0: enough for maxPerProcess each
	Engine   string // the gateways' engine; "" is the platform default
	Loops    int    // event loops per gateway process; 0 default

	RTTRate  float64 // echo round trips per second over all sessions; 0 skips the phase
	PushRate float64 // pushes per second over all sessions; 0 skips the phase
	Phase    time.Duration
	Settle   time.Duration // idle time before memory is read

	// Exe and Args start a child: Exe Args... --role=server|client ...
	Exe  string
	Args []string
	Log  io.Writer // progress lines; nil discards
}

// Summary is what a run measured. Memory is read once every session is
// connected and idle; CPU is the gateways' share of the round-trip and
// push phases.
type Summary struct {
	Sessions       int    `json:"sessions"`
	SessionsFailed int    `json:"sessions_failed"`
	Servers        int    `json:"gateway_processes"`
	Clients        int    `json:"client_processes"`
	Engine         string `json:"engine"`
	CPUs           int    `json:"machine_cpus"`

	GatewayRSSBytes         int64   `json:"gateway_rss_bytes"`
	GatewayBaselineRSSBytes int64   `json:"gateway_baseline_rss_bytes"`
	RSSPerSessionBytes      float64 `json:"rss_per_session_bytes"`
	KernelSocketBytes       int64   `json:"kernel_socket_bytes"`
	KernelSlabBytes         int64   `json:"kernel_slab_bytes"`
	KernelSlabPerSocket     float64 `json:"kernel_slab_bytes_per_socket"`
	HeapPerSessionBytes     float64 `json:"gateway_live_heap_per_session_bytes"`

	RTTTarget      float64 `json:"rtt_target_per_sec,omitempty"`
	RTTPerSec      float64 `json:"rtt_per_sec"`
	RTTSent        int64   `json:"rtt_sent"`
	RTTReceived    int64   `json:"rtt_received"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	P999ms         float64 `json:"p999_ms"`
	MaxMs          float64 `json:"max_ms"`
	GatewayCPU     float64 `json:"gateway_cpu_cores"`
	LoadCPU        float64 `json:"load_generator_cpu_cores"`
	PushTarget     float64 `json:"push_target_per_sec,omitempty"`
	PushPerSec     float64 `json:"push_per_sec"`
	PushP50ms      float64 `json:"push_p50_ms"`
	PushP99ms      float64 `json:"push_p99_ms"`
	GatewayCPUPush float64 `json:"gateway_cpu_cores_push"`

	Errors map[string]int `json:"errors,omitempty"`
}

// Run starts the processes, runs the phases and stops everything.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Sessions <= 0 {
		return Summary{}, errors.New("benchrig: Sessions must be positive")
	}
	if cfg.Servers <= 0 {
		cfg.Servers = (cfg.Sessions*6/5 + maxPerProcess - 1) / maxPerProcess // 20 % headroom: SO_REUSEPORT spreads unevenly
	}
	if cfg.Clients <= 0 {
		cfg.Clients = (cfg.Sessions + maxPerProcess - 1) / maxPerProcess
	}
	if cfg.Sessions/cfg.Clients > maxPerProcess || cfg.Clients > 250 {
		return Summary{}, fmt.Errorf("benchrig: %d sessions over %d client processes exceeds %d per process", cfg.Sessions, cfg.Clients, maxPerProcess)
	}
	if cfg.Phase <= 0 {
		cfg.Phase = 10 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "bench-gateway: "+format+"\n", a...) }

	dir, err := os.MkdirTemp("", "livecell-bench-")
	if err != nil {
		return Summary{}, err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "signing.pem")
	if err := writeKey(keyFile); err != nil {
		return Summary{}, err
	}
	port, err := freePort()
	if err != nil {
		return Summary{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	var children []*child
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	start := func(role []string) (*child, error) {
		c, err := startChild(ctx, cfg.Exe, append(append([]string(nil), cfg.Args...), role...))
		if err == nil {
			children = append(children, c)
		}
		return c, err
	}

	engine := cfg.Engine
	if engine == "" {
		engine = gateway.DefaultEngine()
	}
	sum := Summary{Servers: cfg.Servers, Clients: cfg.Clients, Engine: engine, CPUs: runtime.NumCPU(), Errors: map[string]int{}}
	var servers, clients []*child
	for range cfg.Servers {
		c, err := start(ServerConfig{Listen: addr, KeyFile: keyFile, Engine: cfg.Engine, Loops: cfg.Loops}.args())
		if err != nil {
			return sum, err
		}
		servers = append(servers, c)
	}
	for _, c := range servers {
		if _, err := c.expect("ready", 30*time.Second); err != nil {
			return sum, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	sum.GatewayBaselineRSSBytes = sumOf(servers, procRSS)
	baseHeaps := make([]int64, len(servers))
	for i, c := range servers {
		if err := c.send(command{Cmd: "heap"}); err != nil {
			return sum, err
		}
		ev, err := c.expect("heap", 30*time.Second)
		if err != nil {
			return sum, err
		}
		baseHeaps[i] = ev.HeapBytes
	}
	sockBase, _ := readSockstat()
	slabBase := slabBytes()
	logf("%d gateway processes on %s, baseline RSS %d MiB", cfg.Servers, addr, sum.GatewayBaselineRSSBytes>>20)

	per := cfg.Sessions / cfg.Clients
	shares := make([]int, cfg.Clients)
	for i := range cfg.Clients {
		n := per
		if i < cfg.Sessions%cfg.Clients {
			n++
		}
		shares[i] = n
		first := i*per + min(i, cfg.Sessions%cfg.Clients)
		c, err := start(ClientConfig{Target: addr, Source: fmt.Sprintf("127.0.0.%d", 2+i), Sessions: n, FirstPlayer: first, KeyFile: keyFile}.args())
		if err != nil {
			return sum, err
		}
		clients = append(clients, c)
	}
	connectWait := time.Minute + time.Duration(cfg.Sessions)*time.Millisecond
	for _, c := range clients {
		ev, err := c.expect("connected", connectWait)
		if err != nil {
			return sum, err
		}
		sum.Sessions += ev.Sessions
		sum.SessionsFailed += ev.Failed
		addErrs(sum.Errors, ev.Errors)
	}
	logf("%d sessions connected (%d failed); settling %s", sum.Sessions, sum.SessionsFailed, cfg.Settle)
	time.Sleep(cfg.Settle)
	sum.GatewayRSSBytes = sumOf(servers, procRSS)
	if sum.Sessions > 0 {
		sum.RSSPerSessionBytes = float64(sum.GatewayRSSBytes-sum.GatewayBaselineRSSBytes) / float64(sum.Sessions)
	}
	if ss, err := readSockstat(); err == nil {
		sum.KernelSocketBytes = ss.memBytes - sockBase.memBytes
	}
	if slab := slabBytes(); slab >= 0 && slabBase >= 0 {
		sum.KernelSlabBytes = slab - slabBase
	}
	var heap, baseHeap int64
	for i, c := range servers {
		if err := c.send(command{Cmd: "heap"}); err != nil {
			return sum, err
		}
		ev, err := c.expect("heap", 30*time.Second)
		if err != nil {
			return sum, err
		}
		heap += ev.HeapBytes
		baseHeap += baseHeaps[i]
	}
	if sum.Sessions > 0 {
		sum.HeapPerSessionBytes = float64(heap-baseHeap) / float64(sum.Sessions)
		sum.KernelSlabPerSocket = float64(sum.KernelSlabBytes) / float64(2*sum.Sessions)
	}
	logf("idle: gateway RSS %d MiB, %.0f B per session (live heap %.0f B per session)", sum.GatewayRSSBytes>>20, sum.RSSPerSessionBytes, sum.HeapPerSessionBytes)

	if cfg.RTTRate > 0 {
		sum.RTTTarget = cfg.RTTRate
		cpu0, load0 := sumCPU(servers), sumCPU(clients)
		t0 := time.Now()
		for i, c := range clients {
			if err := c.send(command{Cmd: "rtt", Rate: cfg.RTTRate * float64(shares[i]) / float64(cfg.Sessions), Seconds: cfg.Phase.Seconds()}); err != nil {
				return sum, err
			}
		}
		h := newHist()
		var last int64
		for _, c := range clients {
			ev, err := c.expect("rtt", cfg.Phase+replyGrace+30*time.Second)
			if err != nil {
				return sum, err
			}
			sum.RTTSent += ev.Sent
			sum.RTTReceived += ev.Received
			last = max(last, ev.LastNS)
			merge(h, ev.Hist)
			addErrs(sum.Errors, ev.Errors)
		}
		wall := time.Since(t0).Seconds()
		sum.GatewayCPU = (sumCPU(servers) - cpu0) / wall
		sum.LoadCPU = (sumCPU(clients) - load0) / wall
		if secs := float64(last-t0.UnixNano()) / 1e9; secs > 0 {
			sum.RTTPerSec = float64(sum.RTTReceived) / max(secs, cfg.Phase.Seconds())
		}
		sum.P50ms, sum.P99ms = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99))
		sum.P999ms, sum.MaxMs = ms(h.ValueAtQuantile(99.9)), ms(h.Max())
		logf("round trips: %.0f/s (target %.0f), p50 %.2f ms, p99 %.2f ms, gateway CPU %.2f cores", sum.RTTPerSec, cfg.RTTRate, sum.P50ms, sum.P99ms, sum.GatewayCPU)
	}

	if cfg.PushRate > 0 {
		sum.PushTarget = cfg.PushRate
		for _, c := range clients { // reset the clients' counts
			if err := c.send(command{Cmd: "counts"}); err != nil {
				return sum, err
			}
			if _, err := c.expect("counts", 30*time.Second); err != nil {
				return sum, err
			}
		}
		cpu0 := sumCPU(servers)
		t0 := time.Now()
		for _, c := range servers {
			if err := c.send(command{Cmd: "push", Rate: cfg.PushRate / float64(len(servers)), Seconds: cfg.Phase.Seconds()}); err != nil {
				return sum, err
			}
		}
		for _, c := range servers {
			if _, err := c.expect("pushed", cfg.Phase+30*time.Second); err != nil {
				return sum, err
			}
		}
		sum.GatewayCPUPush = (sumCPU(servers) - cpu0) / time.Since(t0).Seconds()
		time.Sleep(replyGrace) // let the last pushes arrive
		h := newHist()
		var got, last int64
		for _, c := range clients {
			if err := c.send(command{Cmd: "counts"}); err != nil {
				return sum, err
			}
			ev, err := c.expect("counts", 30*time.Second)
			if err != nil {
				return sum, err
			}
			got += ev.Pushes
			last = max(last, ev.LastNS)
			merge(h, ev.Hist)
		}
		if secs := float64(last-t0.UnixNano()) / 1e9; secs > 0 {
			sum.PushPerSec = float64(got) / max(secs, cfg.Phase.Seconds())
		}
		sum.PushP50ms, sum.PushP99ms = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99))
		logf("pushes: %.0f/s delivered (target %.0f), p50 %.2f ms, p99 %.2f ms", sum.PushPerSec, cfg.PushRate, sum.PushP50ms, sum.PushP99ms)
	}
	return sum, nil
}

func ms(us int64) float64 { return float64(us) / 1000 }

func merge(h *hdrhistogram.Histogram, s *hdrhistogram.Snapshot) {
	if s != nil {
		h.Merge(hdrhistogram.Import(s))
	}
}

func addErrs(dst, src map[string]int) {
	for k, v := range src {
		dst[k] += v
	}
}

func sumOf(cs []*child, f func(int) (int64, error)) int64 {
	var t int64
	for _, c := range cs {
		if v, err := f(c.pid); err == nil {
			t += v
		}
	}
	return t
}

func sumCPU(cs []*child) float64 {
	var t float64
	for _, c := range cs {
		if v, err := procCPU(c.pid); err == nil {
			t += v
		}
	}
	return t
}

func writeKey(path string) error {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	pem, err := token.EncodePrivateKeyPEM(priv)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem, 0o600)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// child is a process of the rig and its event stream.
type child struct {
	cmd    *exec.Cmd
	pid    int
	in     io.WriteCloser
	events chan event
	done   chan error
}

func startChild(ctx context.Context, exe string, args []string) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchrig: start %s: %w", exe, err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, in: in, events: make(chan event, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20) // histograms are large lines
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				c.events <- ev
			}
		}
		c.done <- cmd.Wait()
		close(c.events)
	}()
	return c, nil
}

func (c *child) send(cmd command) error {
	b, _ := json.Marshal(cmd)
	_, err := fmt.Fprintf(c.in, "%s\n", b)
	return err
}

// expect waits for the child's next event, which must be want.
func (c *child) expect(want string, timeout time.Duration) (event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, ok := <-c.events:
		switch {
		case !ok:
			return ev, fmt.Errorf("benchrig: process %d exited waiting for %q: %v", c.pid, want, <-c.done)
		case ev.Event == "error":
			return ev, fmt.Errorf("benchrig: process %d: %s", c.pid, ev.Message)
		case ev.Event != want:
			return ev, fmt.Errorf("benchrig: process %d sent %q, want %q", c.pid, ev.Event, want)
		}
		return ev, nil
	case <-t.C:
		return event{}, fmt.Errorf("benchrig: process %d: no %q within %s", c.pid, want, timeout)
	}
}

// stop closes the child's input, which ends it, and kills it if it lingers.
func (c *child) stop() {
	_ = c.in.Close()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
		_ = c.cmd.Process.Kill()
	case <-c.events:
		for range c.events {
		}
	}
}
