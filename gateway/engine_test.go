package gateway

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/protocol"
)

// The epoll engine ties no goroutine to a session: holding many idle
// sessions costs none, while the goroutine engine costs two each.
func TestIdleSessionsHoldNoGoroutines(t *testing.T) {
	h := startGateway(t, nil, nil)
	if h.g.cfg.Engine != EngineEpoll {
		t.Skip("the goroutine engine runs two goroutines per session by design")
	}
	before := runtime.NumGoroutine()
	const n = 200
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = h.dial(t)
		clients[i].hello(fmt.Sprintf("good:idle-%d", i))
	}
	eventually(t, "every session bound", func() bool { return h.g.Sessions() == n })
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Errorf("%d idle sessions added %d goroutines, want (almost) none", n, grew)
	}
	for _, c := range clients[:5] {
		c.ping()
	}
}

// Frames arrive in pieces of any size: the engine keeps the incomplete
// one until the rest comes, whatever the split.
func TestFramesSplitAcrossReads(t *testing.T) {
	h := startGateway(t, nil, nil)
	c := h.dial(t)
	c.hello("good:splitter")
	var stream []byte
	for id := uint32(1); id <= 3; id++ {
		stream = protocol.AppendFrame(stream, protocol.Frame{Header: protocol.Header{Opcode: protocol.OpEcho, RequestID: id}, Payload: []byte(`"piece"`)})
	}
	for _, chunk := range [][]byte{stream[:1], stream[1:5], stream[5:13], stream[13:30], stream[30:]} {
		c.writeRaw(chunk)
		time.Sleep(5 * time.Millisecond) // let each piece be read on its own
	}
	for id := uint32(1); id <= 3; id++ {
		f := c.read()
		if f.Opcode != protocol.OpEcho || f.RequestID != id || string(f.Payload) != `"piece"` {
			t.Fatalf("answer %d: opcode %v id %d payload %s; want echo %d of \"piece\"", id, f.Opcode, f.RequestID, f.Payload, id)
		}
	}
}

func TestEngineConfig(t *testing.T) {
	if _, err := New(Config{CellID: "c", Listen: ":0", Engine: "io_uring"}, Deps{Auth: fakeAuth{}}); err == nil {
		t.Error("unknown engine accepted")
	}
	if _, err := New(Config{CellID: "c", Listen: ":0", Loops: -1}, Deps{Auth: fakeAuth{}}); err == nil {
		t.Error("negative Loops accepted")
	}
	cfg, err := Config{CellID: "c", Listen: ":0"}.withDefaults()
	if err != nil || cfg.Engine != DefaultEngine() || cfg.Loops != runtime.GOMAXPROCS(0) {
		t.Errorf("defaults: engine %q loops %d (%v); want %q and GOMAXPROCS", cfg.Engine, cfg.Loops, err, DefaultEngine())
	}
}
