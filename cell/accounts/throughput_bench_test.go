package accounts_test

// Throughput benchmarks for issue 3's target: sign-ins per second against
// PostgreSQL on this machine, with everything the measurement has to carry on
// the same box (PostgreSQL, the service, the HTTP client and the local Steam
// server). Results and the commands that produced them are in
// docs/benchmarks.md.
//
//	LIVECELL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -run='^$' -bench='PlatformLoginThroughput|PlatformRegistrationThroughput|PasswordLogin$' \
//	  -benchtime=20000x -count=3 ./cell/accounts/
//
// What is real: the accounts Handler served by net/http on a loopback
// listener, a keep-alive load generator (rawClient), pgstore and the PostgreSQL player directory
// on one pgx pool with the production pool defaults (db.ParseConfig), the
// real steam verifier calling a steamtest server over loopback HTTP for
// every sign-in (nothing is cached), Ed25519 access tokens, refresh tokens
// stored hashed, Prometheus metrics and an Info-level JSON logger writing to
// io.Discard. What is not: rate limiting is OFF (Config.RateLimit.Disabled),
// because it is per source address and all of this load comes from
// 127.0.0.1; and the cell's telemetry middleware (tracing, RED metrics) is
// not wrapped around the handler.
//
// Throughput, not serial latency, is the target, so many sign-ins are in
// flight at once (LIVECELL_BENCH_INFLIGHT, default 64; b.SetParallelism
// rounds it to a multiple of GOMAXPROCS). Each benchmark reports:
//
//	logins/s (or registrations/s)  ops / wall time of the timed loop
//	p50-ms, p99-ms                 per-request latency seen by the client
//	go-cpu-µs/op                   CPU of this process (service + client + steamtest) per op
//	pg-cpu-µs/op                   CPU of the PostgreSQL backends serving the pool
//	machine-cpu-µs/op              CPU of the whole machine (/proc/stat)
//	other-cpu-µs/op                machine − go − pg: WAL writer, softirq, neighbours
//	sql/op                         statements (round trips) the pool sent per op
//	tx/op                          transactions among them (a lone statement is one)
//	walsyncs/op                    WAL flushes (pg_stat_wal; server-wide, so neighbours count)
//
// The pool size is db.ParseConfig's default (4×GOMAXPROCS) unless
// LIVECELL_BENCH_POOL says otherwise.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/pgstore"
	"github.com/livecell/livecell/cell/accounts/platform/steam"
	"github.com/livecell/livecell/cell/accounts/platform/steam/steamtest"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/token"
)

const (
	tpCell     = "eu-west"
	tpSteamApp = 480
	tpSteamKey = "BENCHPUBLISHERKEY"
	// tpPlayers is how many returning players the login benchmark cycles
	// through: enough that rows are not all in one index page.
	tpPlayers = 20000
)

// tpRig is a running accounts service on PostgreSQL behind a loopback HTTP
// server, with a keep-alive client.
type tpRig struct {
	url      string       // the service's base URL
	client   *http.Client // with LIVECELL_BENCH_CLIENT=net/http
	raw      *rawClient   // otherwise
	pool     *pgxpool.Pool
	admin    *pgx.Conn // outside the pool: reads server statistics
	steam    *steamtest.Server
	sql      sqlCounter // what the pool's connections send
	inflight int
	appName  string // application_name of the pool's connections
}

// sqlCounter counts the statements the pool's connections send (each one
// round trip) and the transactions they make: a statement outside
// BEGIN…COMMIT is a transaction of its own.
type sqlCounter struct {
	statements, transactions atomic.Int64
	inTx                     sync.Map // *pgx.Conn → struct{} while its BEGIN is open
}

func (c *sqlCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.statements.Add(1)
	word, _, _ := strings.Cut(strings.TrimSpace(data.SQL), " ")
	switch strings.ToLower(word) {
	case "begin":
		c.inTx.Store(conn, struct{}{})
	case "commit", "rollback":
		c.inTx.Delete(conn)
		c.transactions.Add(1)
	default:
		if _, open := c.inTx.Load(conn); !open {
			c.transactions.Add(1)
		}
	}
	return ctx
}

func (*sqlCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func tpEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// newTPRig starts the service. argon2 is used for password accounts.
func newTPRig(b *testing.B, argon2 accounts.Argon2Params) *tpRig {
	b.Helper()
	r := &tpRig{inflight: tpEnvInt(b, "LIVECELL_BENCH_INFLIGHT", 64)}

	// dbtest makes (and drops) a fresh schema but caps its pool at 4
	// connections; the service gets a production-sized pool on that schema.
	small := dbtest.Pool(b)
	schema := small.Config().ConnConfig.RuntimeParams["search_path"]
	cfg, err := db.ParseConfig(dbtest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	r.appName = "livecell-bench-" + schema
	cfg.ConnConfig.RuntimeParams["application_name"] = r.appName
	cfg.MaxConns = int32(tpEnvInt(b, "LIVECELL_BENCH_POOL", int(cfg.MaxConns)))
	cfg.ConnConfig.Tracer = &r.sql
	ctx := context.Background()
	if r.pool, err = db.OpenConfig(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.pool.Close) // before dbtest's DROP SCHEMA (cleanups are LIFO)
	if r.admin, err = pgx.Connect(ctx, dbtest.URL(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.admin.Close(context.Background()) })

	store := pgstore.New(r.pool)
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	dir := directory.NewPostgres(r.pool)
	if err := dir.Migrate(ctx); err != nil {
		b.Fatal(err)
	}

	r.steam = steamtest.NewServer(tpSteamApp, tpSteamKey)
	b.Cleanup(r.steam.Close)
	sv, err := steam.New(steam.Config{BaseURL: r.steam.URL(), AppID: tpSteamApp, PublisherKey: tpSteamKey})
	if err != nil {
		b.Fatal(err)
	}
	keys, err := token.GenerateKeySet()
	if err != nil {
		b.Fatal(err)
	}
	signer, err := token.NewSigner(keys, nil)
	if err != nil {
		b.Fatal(err)
	}
	verifier := token.NewVerifier(keys, nil)
	svc, err := accounts.New(accounts.Config{
		CellID:       tpCell,
		PasswordAuth: true,
		Argon2:       argon2,
		// All load comes from 127.0.0.1 and the per-source limit would
		// refuse almost all of it: rate limiting is off in these benchmarks.
		RateLimit: accounts.RateLimitConfig{Disabled: true},
	}, accounts.Deps{
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Store:  store,
		Tokens: signer,
		Verify: accounts.VerifyFunc(func(tok string) (string, string, error) {
			c, err := verifier.Verify(tok, token.AudiencePlayer)
			return c.Subject, c.Cell, err
		}),
		Homes:   dir,
		Steam:   sv,
		Metrics: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	r.url = "http://" + ln.Addr().String()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * r.inflight
	tr.MaxIdleConnsPerHost = 4 * r.inflight
	r.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	switch c := os.Getenv("LIVECELL_BENCH_CLIENT"); c {
	case "", "raw":
		r.raw = &rawClient{host: ln.Addr().String()}
		b.Cleanup(r.raw.close)
	case "net/http":
	default:
		b.Fatalf("LIVECELL_BENCH_CLIENT=%q: want raw or net/http", c)
	}
	return r
}

// rawClient is the load generator's default HTTP/1.1 client, built like
// wrk's: keep-alive connections, each request written and its answer read
// on the calling goroutine. net/http's client costs its two goroutine
// hand-offs per request on top (≈ 20 µs of this 2-core machine's CPU per
// login, docs/benchmarks.md), which a load generator on the measured box
// should not charge to the service. LIVECELL_BENCH_CLIENT=net/http
// measures with net/http's client instead.
type rawClient struct {
	host string
	mu   sync.Mutex
	idle []*rawConn
}

type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	req []byte
}

func (c *rawClient) post(path string, body []byte) (int, []byte, error) {
	c.mu.Lock()
	var rc *rawConn
	if n := len(c.idle); n > 0 {
		rc, c.idle = c.idle[n-1], c.idle[:n-1]
	}
	c.mu.Unlock()
	if rc == nil {
		nc, err := net.Dial("tcp", c.host)
		if err != nil {
			return 0, nil, err
		}
		rc = &rawConn{nc: nc, br: bufio.NewReader(nc)}
	}
	rc.req = append(rc.req[:0], "POST "...)
	rc.req = append(rc.req, path...)
	rc.req = append(rc.req, " HTTP/1.1\r\nHost: "...)
	rc.req = append(rc.req, c.host...)
	rc.req = append(rc.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	rc.req = strconv.AppendInt(rc.req, int64(len(body)), 10)
	rc.req = append(rc.req, "\r\n\r\n"...)
	rc.req = append(rc.req, body...)
	status, out, err := rc.roundTrip()
	if err != nil {
		rc.nc.Close()
		return 0, nil, err
	}
	c.mu.Lock()
	c.idle = append(c.idle, rc)
	c.mu.Unlock()
	return status, out, nil
}

func (rc *rawConn) roundTrip() (int, []byte, error) {
	if _, err := rc.nc.Write(rc.req); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return 0, nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errors.New("server closed the keep-alive connection")
	}
	return resp.StatusCode, out, err
}

func (c *rawClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range c.idle {
		rc.nc.Close()
	}
	c.idle = nil
}

// post sends one request and returns its status and body.
func (r *tpRig) post(path string, body []byte) (int, []byte, error) {
	if r.raw != nil {
		return r.raw.post(path, body)
	}
	req, err := http.NewRequest(http.MethodPost, r.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// checkAuth decodes an AuthResponse and checks it carries both tokens.
func checkAuth(body []byte) error {
	var a accountsapi.AuthResponse
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("auth response %q: %v", body, err)
	}
	if a.PlayerID == "" || a.AccessToken == "" || a.RefreshToken == "" {
		return fmt.Errorf("auth response %q lacks a player or a token", body)
	}
	return nil
}

// walSyncs is how many times PostgreSQL has flushed WAL to disk (fdatasync),
// server-wide: other clients of the server count too. Backends publish
// their statistics lazily (when idle, at most once a second), hence the
// pause first.
func (r *tpRig) walSyncs(b *testing.B) int64 {
	b.Helper()
	time.Sleep(1500 * time.Millisecond)
	ctx := context.Background()
	if _, err := r.admin.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := r.admin.QueryRow(ctx, `SELECT wal_sync FROM pg_stat_wal`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// cpuStats is CPU time used so far: by the machine, by this process and by
// the PostgreSQL backends serving the rig's pool.
type cpuStats struct{ machine, process, backends time.Duration }

func (r *tpRig) cpu(b *testing.B) cpuStats {
	b.Helper()
	rows, err := r.admin.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, r.appName)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	return cpuStats{machine: machineCPU(), process: processCPU(), backends: pidsCPU(pids)}
}

// warmUp runs op(0..n-1) untimed, with the rig's concurrency, so that every
// pool connection is open and has prepared its statements, and the HTTP
// connections exist, before anything is timed.
func (r *tpRig) warmUp(b *testing.B, n int, op func(i int) error) {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, r.inflight)
	)
	for range r.inflight {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("warm-up: %v", err)
	}
}

// run times b.N calls of op spread over the rig's in-flight clients and
// reports throughput (unit), latency percentiles and costs per op. op gets
// a distinct index in [0, b.N) per call.
func (r *tpRig) run(b *testing.B, unit string, op func(i int) error) {
	b.Helper()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism(max(1, (r.inflight+procs-1)/procs))
	var (
		next   atomic.Int64
		mu     sync.Mutex
		lat    = make([]time.Duration, 0, b.N)
		failed atomic.Bool
	)
	wal0 := r.walSyncs(b)
	cpu0 := r.cpu(b)
	stmt0, tx0 := r.sql.statements.Load(), r.sql.transactions.Load()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, b.N/r.inflight+1)
		for pb.Next() {
			i := int(next.Add(1) - 1)
			t0 := time.Now()
			err := op(i)
			local = append(local, time.Since(t0))
			if err != nil {
				if failed.CompareAndSwap(false, true) {
					b.Error(err)
				}
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	wall := time.Since(start)
	b.StopTimer()
	cpu1 := r.cpu(b)
	stmt1, tx1 := r.sql.statements.Load(), r.sql.transactions.Load()
	wal1 := r.walSyncs(b)
	if failed.Load() {
		return
	}
	n := float64(b.N)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	perOp := func(d time.Duration) float64 { return float64(d) / n / 1e3 }
	b.ReportMetric(n/wall.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(perOp(cpu1.process-cpu0.process), "go-cpu-µs/op")
	if cpu0.machine > 0 {
		b.ReportMetric(perOp(cpu1.backends-cpu0.backends), "pg-cpu-µs/op")
		b.ReportMetric(perOp(cpu1.machine-cpu0.machine), "machine-cpu-µs/op")
		// What neither this process nor its backends used: the WAL writer
		// and other PostgreSQL helpers, kernel work charged to no process
		// (softirq), and anything else running on the machine. A large
		// value means a noisy neighbour: rerun.
		b.ReportMetric(perOp((cpu1.machine-cpu0.machine)-(cpu1.process-cpu0.process)-(cpu1.backends-cpu0.backends)), "other-cpu-µs/op")
	}
	b.ReportMetric(float64(stmt1-stmt0)/n, "sql/op")
	b.ReportMetric(float64(tx1-tx0)/n, "tx/op")
	b.ReportMetric(float64(wal1-wal0)/n, "walsyncs/op")
}

func steamTicket(i int) string { return fmt.Sprintf("%016x", i) }

func steamLoginBody(ticket string) []byte {
	b, _ := json.Marshal(accountsapi.SteamLoginRequest{Ticket: ticket})
	return b
}

// BenchmarkPlatformLoginThroughput: returning players sign in with a Steam
// ticket. Per login: the steam verifier asks steamtest over HTTP, the player
// is read from PostgreSQL by identity, a refresh token is stored (its digest,
// committed) and an Ed25519 access token is signed.
func BenchmarkPlatformLoginThroughput(b *testing.B) {
	r := newTPRig(b, cheapBenchArgon2())
	ctx := context.Background()
	// tpPlayers returning players, loaded in bulk as first logins would
	// have left them: a player, its steam identity and its directory entry.
	players, identities, homes := make([][]any, tpPlayers), make([][]any, tpPlayers), make([][]any, tpPlayers)
	now := time.Now().UTC().Truncate(time.Microsecond)
	bodies := make([][]byte, tpPlayers)
	for i := range tpPlayers {
		id := uuid.Must(uuid.NewV7()).String()
		sid := steamtest.SteamID(uint32(1_000_000 + i))
		players[i] = []any{id, fmt.Sprintf("steam#bench%06d", i), "", tpCell, now}
		identities[i] = []any{"steam", sid, id, tpCell, "", now}
		homes[i] = []any{id, tpCell}
		r.steam.AddTicket(steamTicket(i), sid)
		bodies[i] = steamLoginBody(steamTicket(i))
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"players", []string{"id", "username", "password_hash", "home_cell", "created_at"}, players},
		{"identities", []string{"provider", "subject", "player_id", "home_cell", "display_name", "created_at"}, identities},
		{"player_homes", []string{"player_id", "cell_id"}, homes},
	} {
		if _, err := r.pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			b.Fatalf("load %s: %v", c.table, err)
		}
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	login := func(i int) error {
		st, body, err := r.post(accountsapi.PathSteamLogin, bodies[i%tpPlayers])
		if err != nil {
			return err
		}
		if st != http.StatusOK {
			return fmt.Errorf("login: status %d body %s", st, body)
		}
		if i == 0 {
			return checkAuth(body)
		}
		return nil
	}
	r.warmUp(b, tpPlayers/4, login)
	b.Run(fmt.Sprintf("inflight=%d", r.inflight), func(b *testing.B) {
		r.run(b, "logins/s", login)
	})
}

// BenchmarkPlatformRegistrationThroughput: first Steam logins of unknown
// players. Per registration: steamtest asked over HTTP, the identity looked
// up (absent), the directory entry written (player_homes), the player and
// its identity stored atomically, a refresh token stored and an access token
// signed. Every op uses a ticket never seen before.
func BenchmarkPlatformRegistrationThroughput(b *testing.B) {
	r := newTPRig(b, cheapBenchArgon2())
	var used atomic.Int64 // tickets used so far
	// register signs in n players never seen before.
	register := func(b *testing.B, n int, run func(b *testing.B, n int, op func(i int) error)) {
		off := int(used.Add(int64(n))) - n
		bodies := make([][]byte, n)
		for i := range n {
			t := steamTicket(off + i)
			r.steam.AddTicket(t, steamtest.SteamID(uint32(2_000_000+off+i)))
			bodies[i] = steamLoginBody(t)
		}
		run(b, n, func(i int) error {
			st, body, err := r.post(accountsapi.PathSteamLogin, bodies[i])
			if err != nil {
				return err
			}
			if st != http.StatusCreated {
				return fmt.Errorf("first login: status %d body %s", st, body)
			}
			return nil
		})
	}
	register(b, 2000, r.warmUp)
	b.Run(fmt.Sprintf("inflight=%d", r.inflight), func(b *testing.B) {
		register(b, b.N, func(b *testing.B, _ int, op func(i int) error) { r.run(b, "registrations/s", op) })
	})
}

// cheapBenchArgon2 is the tests' argon2 cost; the platform benchmarks do
// not hash passwords, it only makes accounts.New's dummy hash quick.
func cheapBenchArgon2() accounts.Argon2Params {
	return accounts.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
}

// BenchmarkPasswordLogin: username/password logins through HTTP on
// PostgreSQL, bounded by argon2id by design (at most GOMAXPROCS hashes run
// at once; the rest queue). "production" is accounts.DefaultArgon2 (m=19 MiB,
// t=2, p=1), "test" the tests' m=64 KiB, t=1. Reported apart from platform
// logins, as issue 3 asks.
func BenchmarkPasswordLogin(b *testing.B) {
	for _, c := range []struct {
		name   string
		params accounts.Argon2Params
	}{
		{"argon2=production", accounts.DefaultArgon2()},
		{"argon2=test", cheapBenchArgon2()},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newTPRig(b, c.params)
			const users = 64
			bodies := make([][]byte, users)
			for i := range users {
				body, _ := json.Marshal(accountsapi.RegisterRequest{Username: fmt.Sprintf("bench%03d", i), Password: "correct horse battery"})
				if st, out, err := r.post(accountsapi.PathRegister, body); err != nil || st != http.StatusCreated {
					b.Fatalf("register: %d %s %v", st, out, err)
				}
				bodies[i] = body
			}
			login := func(i int) error {
				st, body, err := r.post(accountsapi.PathLogin, bodies[i%users])
				if err != nil {
					return err
				}
				if st != http.StatusOK {
					return fmt.Errorf("login: status %d body %s", st, body)
				}
				return nil
			}
			r.warmUp(b, 4*r.inflight, login)
			b.Run(fmt.Sprintf("inflight=%d", r.inflight), func(b *testing.B) {
				r.run(b, "logins/s", login)
			})
		})
	}
}
