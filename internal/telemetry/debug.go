package telemetry

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livecell/livecell/internal/buildinfo"
	"github.com/livecell/livecell/internal/httpapi"
)

// DebugMux serves a process's operational endpoints from reg:
//
//	GET /metrics       Prometheus exposition (OpenMetrics when asked for)
//	GET /buildinfo     buildinfo.Info as JSON
//	GET /healthz       200 "ok" while the process serves HTTP
//	    /debug/pprof/  runtime profiles
//
// Serve it on an operator-only listener, or mount single paths of it on an
// API mux. pprof is registered here explicitly; importing net/http/pprof
// also registers it on http.DefaultServeMux, which livecell never serves.
func DebugMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg, // counts scrape errors in the same registry
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /buildinfo", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, buildinfo.Get())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
