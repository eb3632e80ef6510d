package steam

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts/platform/steam/steamtest"
	"github.com/livecell/livecell/internal/apierr"
)

// okAnswer is the documented success answer for player.
var okAnswer = `{"response":{"params":{"result":"OK","steamid":"` + player + `","ownersteamid":"` + player + `","vacbanned":false,"publisherbanned":false}}}`

func answerOK(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	io.WriteString(w, okAnswer)
}

// countingServer starts srv with h and counts the TCP conns it accepts.
func countingServer(t *testing.T, h http.Handler, useTLS bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if useTLS {
		// Quiet the handshakes that tests fail on purpose.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

// proxy forwards TCP conns to a server (a steamtest.Server, which does not
// show its conns), counting the conns the client makes and those still open.
type proxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	open     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newProxy(t *testing.T, targetURL string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(targetURL, "http://")}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.open.Add(1)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			p.open.Add(-1)
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			done := make(chan struct{})
			go func() {
				io.Copy(c, up)
				c.Close()
				close(done)
			}()
			io.Copy(up, c) // until the client (or the copy above) closes c
			p.open.Add(-1)
			up.Close()
			c.Close()
			<-done
		}()
	}
}

// action is what rawServer does with a request.
type action int

const (
	answerKeep      action = iota // answer and keep the conn open
	answerThenClose               // answer, then close without saying so
	answerThen408                 // answer, then send an unsolicited 408 and close
	hangUp                        // close without answering (the client reads EOF)
	reset                         // close without answering, with a TCP RST
)

// rawServer speaks just enough HTTP/1.1 to misbehave in ways net/http's
// server will not: act says what to do with the i-th request on a conn.
type rawServer struct {
	ln       net.Listener
	act      func(i int) action
	accepted atomic.Int64
	requests atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newRawServer(t *testing.T, act func(i int) action) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, act: act}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *rawServer) handle(c net.Conn) {
	br := bufio.NewReader(c)
	for i := 0; ; i++ {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		s.requests.Add(1)
		a := s.act(i)
		switch a {
		case hangUp:
			return
		case reset:
			c.(*net.TCPConn).SetLinger(0)
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(okAnswer), okAnswer)
		switch a {
		case answerThenClose:
			return
		case answerThen408:
			// Later, as a server timing out the idle conn would.
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			return
		}
	}
}

func idleConns(v *Verifier) int {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return len(v.c.idle)
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func TestConnsAreReused(t *testing.T) {
	srv := steamtest.NewServer(appID, key)
	defer srv.Close()
	srv.AddTicket("0a0b0c0d", player)
	p := newProxy(t, srv.URL())
	v := newVerifier(t, p.URL(), nil)

	const calls = 100
	for i := range calls {
		if _, err := v.Verify(context.Background(), "0a0b0c0d"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := p.accepted.Load(); n != 1 {
		t.Errorf("%d calls used %d conns, want 1", calls, n)
	}
	if n := srv.Requests(); n != calls {
		t.Errorf("server got %d requests, want %d", n, calls)
	}
	// Rejections and non-200 answers leave the conn usable too.
	v.Verify(context.Background(), "deadbeef")
	srv.FailWith(http.StatusServiceUnavailable)
	v.Verify(context.Background(), "0a0b0c0d")
	srv.FailWith(0)
	if _, err := v.Verify(context.Background(), "0a0b0c0d"); err != nil {
		t.Fatal(err)
	}
	if n := p.accepted.Load(); n != 1 {
		t.Errorf("after a rejection and a 503: %d conns, want 1", n)
	}
}

func TestConcurrentVerify(t *testing.T) {
	const goroutines, calls = 32, 50
	tests := []struct {
		maxIdle   int
		wantConns int64 // at most; 0: not checked
	}{
		// Never more conns than calls at once: each goroutine's conn goes
		// back to the pool and is taken again.
		{maxIdle: maxIdleConns, wantConns: goroutines},
		// The conns beyond the cap are closed once the burst is over.
		{maxIdle: 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("maxIdle=%d", tt.maxIdle), func(t *testing.T) {
			srv := steamtest.NewServer(appID, key)
			defer srv.Close()
			srv.AddTicket("0a0b0c0d", player)
			p := newProxy(t, srv.URL())
			v := newVerifier(t, p.URL(), nil)
			v.c.maxIdle = tt.maxIdle

			var wg sync.WaitGroup
			var failed atomic.Int64
			for range goroutines {
				wg.Go(func() {
					for range calls {
						if _, err := v.Verify(context.Background(), "0a0b0c0d"); err != nil {
							if failed.Add(1) == 1 {
								t.Errorf("Verify: %v", err)
							}
						}
						if n := idleConns(v); n > tt.maxIdle {
							t.Errorf("%d idle conns, cap %d", n, tt.maxIdle)
						}
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d calls failed", n, goroutines*calls)
			}
			if n := srv.Requests(); n != goroutines*calls {
				t.Errorf("server got %d requests, want %d", n, goroutines*calls)
			}
			if n := p.accepted.Load(); tt.wantConns != 0 && n > tt.wantConns {
				t.Errorf("%d conns, want at most %d", n, tt.wantConns)
			}
			if n := idleConns(v); n > tt.maxIdle || n == 0 {
				t.Errorf("%d idle conns after the burst, want 1..%d", n, tt.maxIdle)
			}
			eventually(t, "conns over the cap to close", func() bool { return p.open.Load() <= int64(tt.maxIdle) })
		})
	}
}

// TestStaleConnsAreRetried: a server may close a keep-alive conn at any
// time after answering; the next call on it must go to a new conn instead
// of failing the login.
func TestStaleConnsAreRetried(t *testing.T) {
	tests := []struct {
		name  string
		url   func(t *testing.T) string
		pause time.Duration // between calls
	}{
		{"closed right after answering", func(t *testing.T) string {
			return newRawServer(t, func(int) action { return answerThenClose }).URL()
		}, 0},
		{"408 on the idle conn", func(t *testing.T) string {
			return newRawServer(t, func(int) action { return answerThen408 }).URL()
		}, 50 * time.Millisecond},
		{"server idle timeout", func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(answerOK))
			srv.Config.IdleTimeout = 10 * time.Millisecond
			srv.Start()
			t.Cleanup(srv.Close)
			return srv.URL
		}, 60 * time.Millisecond},
		{"Connection: close on odd requests", func(t *testing.T) string {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1)%2 == 1 {
					w.Header().Set("Connection", "close")
				}
				answerOK(w, r)
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, tt.url(t), nil)
			for i := range 10 {
				time.Sleep(tt.pause)
				if _, err := v.Verify(context.Background(), "0a0b"); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
		})
	}
}

// TestDeadServerIsRetriedOnce: a server that takes requests and drops the
// conn is asked twice when the first attempt was on a pooled conn (which
// might just have been stale) and once on a new conn.
func TestDeadServerIsRetriedOnce(t *testing.T) {
	tests := []struct {
		name         string
		how          action
		warm         bool // a pooled conn exists when the server breaks
		wantAttempts int64
	}{
		{"EOF on a pooled conn", hangUp, true, 2},
		{"reset on a pooled conn", reset, true, 2},
		{"EOF on a new conn", hangUp, false, 1},
		{"reset on a new conn", reset, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var broken atomic.Bool
			srv := newRawServer(t, func(int) action {
				if broken.Load() {
					return tt.how
				}
				return answerKeep
			})
			v := newVerifier(t, srv.URL(), nil)
			if tt.warm {
				if _, err := v.Verify(context.Background(), "0a0b"); err != nil {
					t.Fatal(err)
				}
			}
			broken.Store(true)
			requests, accepted := srv.requests.Load(), srv.accepted.Load()
			_, err := v.Verify(context.Background(), "0a0b")
			checkErr(t, err, apierr.Unavailable, "")
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want no timeout or cancellation", err)
			}
			if n := srv.requests.Load() - requests; n != tt.wantAttempts {
				t.Errorf("server got %d attempts, want %d (err %v)", n, tt.wantAttempts, err)
			}
			if n := srv.accepted.Load() - accepted; n != 1 {
				t.Errorf("%d new conns, want 1", n)
			}
			if n := idleConns(v); n != 0 {
				t.Errorf("%d idle conns, want 0", n)
			}
		})
	}
}

func TestVerifyTLS(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(answerOK), true)
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())

	tests := []struct {
		name    string
		tls     *tls.Config
		wantErr string // "" means success
	}{
		{"trusted", &tls.Config{RootCAs: trusted}, ""},
		{"system roots", nil, "certificate"},
		{"other name", &tls.Config{RootCAs: trusted, ServerName: "steam.invalid"}, "certificate"},
		{"TLS 1.3 only", &tls.Config{RootCAs: trusted, MinVersion: tls.VersionTLS13}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.tls
			v := newVerifier(t, srv.URL, func(c *Config) { c.TLS = cfg })
			before := conns.Load()
			for range 5 {
				_, err := v.Verify(context.Background(), "0a0b0c0d")
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					continue
				}
				checkErr(t, err, apierr.Unavailable, "0a0b0c0d")
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
				}
			}
			if n := conns.Load() - before; tt.wantErr == "" && n != 1 {
				t.Errorf("5 calls used %d conns, want 1", n)
			}
		})
	}
	if tests[0].tls.ServerName != "" || tests[0].tls.NextProtos != nil {
		t.Errorf("New changed the caller's tls.Config")
	}
}

// TestInterruptedConnIsNotReused: the answer to a call given up on may
// still arrive, so its conn must not carry the next call.
func TestInterruptedConnIsNotReused(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration                                           // Config.Timeout
		ctx     func(arrived <-chan struct{}) (context.Context, func()) // for the interrupted call
		want    error
	}{
		{"timeout", 200 * time.Millisecond, func(<-chan struct{}) (context.Context, func()) {
			return context.Background(), func() {}
		}, context.DeadlineExceeded},
		{"caller deadline", 0, func(<-chan struct{}) (context.Context, func()) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"caller cancel", 0, func(arrived <-chan struct{}) (context.Context, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-arrived
				cancel()
			}()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("ticket") == "b10c" {
					arrived <- struct{}{}
					select { // bounded, so that a regression fails instead of hanging
					case <-r.Context().Done():
					case <-time.After(2 * time.Second):
					}
					return
				}
				answerOK(w, r)
			}), false)
			v := newVerifier(t, srv.URL, func(c *Config) { c.Timeout = tt.timeout })

			if _, err := v.Verify(context.Background(), "0a0b"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx(arrived)
			defer cancel()
			start := time.Now()
			_, err := v.Verify(ctx, "b10c")
			checkErr(t, err, apierr.Unavailable, "")
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the interrupted call took %v", d)
			}
			if _, err := v.Verify(context.Background(), "0a0b"); err != nil {
				t.Fatalf("call after the interrupted one: %v", err)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d conns, want 2 (a new one after the interrupted call)", n)
			}
		})
	}
}

func TestAnswerFraming(t *testing.T) {
	hijack := func(raw string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer c.Close()
			bw.WriteString(raw)
			bw.Flush()
		}
	}
	chunked := func(parts ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for _, p := range parts {
				io.WriteString(w, p)
				w.(http.Flusher).Flush()
			}
		}
	}
	half := len(okAnswer) / 2
	big := strings.Repeat(" ", maxBody) // JSON allows it; the size does not
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		wantErr   string // "" means success
		wantConns int64  // for two calls: 1 when the conn is reused
	}{
		{"content-length", answerOK, "", 1},
		{"chunked", chunked(okAnswer[:half], okAnswer[half:]), "", 1},
		{"chunked with trailer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			chunked(okAnswer[:half], okAnswer[half:])(w, r)
			w.Header().Set("X-Checksum", "1")
		}, "", 1},
		{"early hints first", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			answerOK(w, r)
		}, "", 1},
		{"until close", hijack("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + okAnswer), "", 2},
		{"HTTP/1.0", hijack(fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(okAnswer), okAnswer)), "", 2},
		{"oversized with length", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, okAnswer+big)
		}, "exceeds", 2},
		{"oversized chunked", chunked(okAnswer, big), "exceeds", 2},
		{"endless chunked", func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				if _, err := io.WriteString(w, big); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, "exceeds", 2},
		// Bytes after the answer are no answer to the next request.
		{"unsolicited second answer", hijack(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(okAnswer), okAnswer) +
			fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(okAnswer), strings.ReplaceAll(okAnswer, player, owner))), "", 2},
		{"truncated", hijack(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(okAnswer), okAnswer[:half])), "unexpected EOF", 2},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/", http.StatusMovedPermanently)
		}, "HTTP 301", 1},
		{"not HTTP", hijack("SSH-2.0-OpenSSH_9.6\r\n"), "malformed HTTP", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, conns := countingServer(t, tt.handler, false)
			v := newVerifier(t, srv.URL, func(c *Config) { c.Timeout = 5 * time.Second })
			for range 2 {
				start := time.Now()
				got, err := v.Verify(context.Background(), "0a0b0c0d")
				if d := time.Since(start); d > time.Second {
					t.Errorf("call took %v", d)
				}
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if got.Subject != player {
						t.Fatalf("got %+v", got)
					}
					continue
				}
				checkErr(t, err, apierr.Unavailable, "0a0b0c0d")
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
				}
			}
			if n := conns.Load(); n != tt.wantConns {
				t.Errorf("two calls used %d conns, want %d", n, tt.wantConns)
			}
			// A conn that could not be reused must not be pooled either
			// (the stale-conn retry would hide it otherwise).
			if n := idleConns(v); n != 2-int(tt.wantConns) {
				t.Errorf("%d idle conns, want %d", n, 2-tt.wantConns)
			}
		})
	}
}

func TestIdleConnsExpireAndClose(t *testing.T) {
	srv := steamtest.NewServer(appID, key)
	defer srv.Close()
	srv.AddTicket("0a0b0c0d", player)
	p := newProxy(t, srv.URL())
	v := newVerifier(t, p.URL(), nil)
	verify := func() {
		t.Helper()
		if _, err := v.Verify(context.Background(), "0a0b0c0d"); err != nil {
			t.Fatal(err)
		}
	}

	verify()
	v.c.mu.Lock()
	v.c.idle[0].idleAt = time.Now().Add(-maxIdleAge - time.Second)
	v.c.mu.Unlock()
	verify()
	if n := p.accepted.Load(); n != 2 {
		t.Errorf("%d conns, want 2: a conn idle past %v is not reused", n, maxIdleAge)
	}
	eventually(t, "the expired conn to close", func() bool { return p.open.Load() == 1 })

	v.Close()
	eventually(t, "Close to close the idle conn", func() bool { return p.open.Load() == 0 })
	verify() // still works, on a conn of its own
	if n := idleConns(v); n != 0 {
		t.Errorf("%d idle conns after Close, want 0", n)
	}
	eventually(t, "the conn made after Close to close", func() bool { return p.open.Load() == 0 })
}

func TestNewClientTarget(t *testing.T) {
	tests := []struct {
		base       string
		addr, host string
		serverName string // "" for http
		path       string
	}{
		{"https://partner.steam-api.com", "partner.steam-api.com:443", "partner.steam-api.com", "partner.steam-api.com", Path},
		{"https://partner.steam-api.com:8443/", "partner.steam-api.com:8443", "partner.steam-api.com:8443", "partner.steam-api.com", Path},
		{"http://127.0.0.1:8080/steam/", "127.0.0.1:8080", "127.0.0.1:8080", "", "/steam" + Path},
		{"http://steam.internal", "steam.internal:80", "steam.internal", "", Path},
		{"https://[::1]:9443", "[::1]:9443", "[::1]:9443", "::1", Path},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			v, err := New(Config{BaseURL: tt.base, AppID: appID, PublisherKey: key})
			if err != nil {
				t.Fatal(err)
			}
			c := v.c
			if c.addr != tt.addr {
				t.Errorf("addr = %q, want %q", c.addr, tt.addr)
			}
			if want := "GET " + tt.path + "?appid=480&key=" + key + "&ticket="; c.head != want {
				t.Errorf("head = %q, want %q", c.head, want)
			}
			if want := " HTTP/1.1\r\nHost: " + tt.host + "\r\nAccept: application/json\r\nUser-Agent: livecell\r\n\r\n"; c.tail != want {
				t.Errorf("tail = %q, want %q", c.tail, want)
			}
			switch {
			case tt.serverName == "" && c.tls != nil:
				t.Errorf("tls set for http")
			case tt.serverName != "" && (c.tls == nil || c.tls.ServerName != tt.serverName || c.tls.MinVersion != tls.VersionTLS12):
				t.Errorf("tls = %+v, want ServerName %q and TLS 1.2 at least", c.tls, tt.serverName)
			}
		})
	}
}
