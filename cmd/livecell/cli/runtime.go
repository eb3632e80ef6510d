package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accounts/pgstore"
	catalogmem "github.com/livecell/livecell/cell/catalog/memstore"
	catalogpg "github.com/livecell/livecell/cell/catalog/pgstore"
	inventorypg "github.com/livecell/livecell/cell/inventory/pgstore"
	storepg "github.com/livecell/livecell/cell/store/pgstore"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/events/pgoutbox"
	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/internal/token"
)

// loadKeys reads the signing keys from LIVECELL_SIGNING_KEY_FILE, or public
// keys only from LIVECELL_JWKS_FILE. Without either, generate makes
// throwaway keys: fine for one process, useless across processes.
func loadKeys(log *slog.Logger, generate bool) (*token.KeySet, error) {
	if path := os.Getenv("LIVECELL_SIGNING_KEY_FILE"); path != "" {
		ks, err := token.LoadKeySet(path)
		if err != nil {
			return nil, fmt.Errorf("LIVECELL_SIGNING_KEY_FILE: %w", err)
		}
		return ks, nil
	}
	if path := os.Getenv("LIVECELL_JWKS_FILE"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("LIVECELL_JWKS_FILE: %w", err)
		}
		ks, err := token.ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("LIVECELL_JWKS_FILE: %w", err)
		}
		return ks, nil
	}
	if !generate {
		return nil, errors.New("no keys: set LIVECELL_SIGNING_KEY_FILE (see `livecell keys generate`) or LIVECELL_JWKS_FILE")
	}
	log.Warn("using throwaway signing keys generated at start-up; set LIVECELL_SIGNING_KEY_FILE for anything but local development")
	return token.GenerateKeySet()
}

// stores are the storage implementations a process uses.
type stores struct {
	accounts  accounts.Store
	directory directoryStore
	// commerce gives a cell the catalog, inventory and store storage: the
	// catalog is shared (GLOBAL data), the rest is the cell's own.
	commerce func(cellID string) cell.CommerceDeps
	close    func()
}

// directoryStore is what the processes here need of the player directory.
type directoryStore interface {
	Home(ctx context.Context, playerID string) (string, error)
	SetHome(ctx context.Context, playerID, cellID string) error
}

// openStores returns the embedded stores when url is empty, otherwise
// PostgreSQL (or CockroachDB) stores, migrated.
func openStores(ctx context.Context, log *slog.Logger, url string) (*stores, error) {
	if url == "" {
		catalog := catalogmem.New()
		return &stores{accounts: memstore.New(), directory: directory.NewMemory(), close: func() {},
			commerce: func(string) cell.CommerceDeps { return cell.CommerceDeps{CatalogStore: catalog} }}, nil
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := db.MigrateSchemas(ctx, pool, schemas()); err != nil {
		pool.Close()
		return nil, err
	}
	acc := pgstore.New(pool)
	dir := directory.NewPostgres(pool)
	log.Info("using PostgreSQL", "host", hostOf(pool))
	commerce := func(cellID string) cell.CommerceDeps {
		return cell.CommerceDeps{CatalogStore: catalogpg.New(pool), InventoryStore: inventorypg.New(pool),
			StoreStore: storepg.New(pool), Outbox: pgoutbox.New(pool, cellID)}
	}
	return &stores{accounts: acc, directory: dir, close: pool.Close, commerce: commerce}, nil
}

func hostOf(pool *pgxpool.Pool) string {
	cc := pool.Config().ConnConfig
	return fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
}

// httpServer serves h on a bound listener until Shutdown.
type httpServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
}

func serveHTTP(addr string, h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{
		ln:   ln,
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *httpServer) addr() string { return s.ln.Addr().String() }

func (s *httpServer) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// withMetrics mounts /metrics and /healthz of reg next to h.
func withMetrics(reg *prometheus.Registry, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	debug := telemetry.DebugMux(reg)
	mux.Handle("GET /metrics", debug)
	mux.Handle("GET /healthz", debug)
	mux.Handle("GET /buildinfo", debug)
	mux.Handle("/", h)
	return mux
}
