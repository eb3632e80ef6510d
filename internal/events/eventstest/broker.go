package eventstest

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

// EnvAMQPURL names the environment variable holding the test broker's URL.
const EnvAMQPURL = "LIVECELL_TEST_AMQP_URL"

// AMQPURL returns the test RabbitMQ URL, skipping the test when it is unset
// outside CI and failing it in CI (CI=true), where a missing broker is a
// failure, not a silent pass.
func AMQPURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvAMQPURL); u != "" {
		return u
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(EnvAMQPURL + " must be set in CI")
	}
	t.Skip("SKIPPING RabbitMQ test: " + EnvAMQPURL + " is unset (required in CI)")
	return ""
}

// Prefix returns a unique topology prefix, so tests sharing a broker never
// share a queue.
func Prefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}

// Proxy is a TCP proxy in front of the broker that a test can cut: Cut
// drops every open connection (a network failure, as the client sees a
// broker restart), Down refuses new ones until Up (the broker is away).
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

// NewProxy listens on loopback and forwards to target ("host:port").
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// Cut closes every connection through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Down cuts every connection and refuses new ones; Up accepts them again.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.Cut()
}

// Up lets connections through again.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
