package telemetry

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// RouteUnmatched is the route label of requests no ServeMux pattern matched.
const RouteUnmatched = "unmatched"

// HTTPDurationBuckets are the request-duration histogram buckets, in
// seconds: fine below 10 ms where healthy APIs live (so P99 is meaningful),
// coarse up to 10 s for timeouts.
func HTTPDurationBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

func registerHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	var (
		m   httpMetrics
		err error
	)
	m.requests, err = Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_http_requests_total",
		Help: "HTTP requests served, by matched route pattern, method and status code.",
	}, []string{"component", "route", "method", "code"}))
	if err != nil {
		return nil, err
	}
	m.duration, err = Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "livecell_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by matched route pattern and method.",
		Buckets: HTTPDurationBuckets(),
	}, []string{"component", "route", "method"}))
	if err != nil {
		return nil, err
	}
	m.inFlight, err = Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "livecell_http_in_flight_requests",
		Help: "HTTP requests being served now.",
	}, []string{"component"}))
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// InstrumentHTTP wraps next with RED metrics on reg and, when tp is not nil,
// OpenTelemetry server spans from tp that continue an incoming W3C
// traceparent (see Propagator).
//
// Metrics: livecell_http_requests_total{component,route,method,code},
// livecell_http_request_duration_seconds{component,route,method} and
// livecell_http_in_flight_requests{component}. The route label is the
// ServeMux pattern that matched, without its method ("/v1/resolve",
// "/v1/players/{id}"), or "unmatched"; methods outside the standard set are
// counted as "OTHER". Label values therefore never come from raw paths, and
// a client probing random URLs cannot grow the series count.
//
// The pattern is read from the *http.Request after next returns:
// http.ServeMux sets Request.Pattern on the request it is handed. So next
// must be the ServeMux itself or a handler that passes the same request
// down; a middleware that copies the request (r.WithContext) between this
// handler and the mux hides the pattern and its requests count as
// "unmatched". The tracing layer is put outside the metrics layer for this
// reason, and it renames its span from the same pattern.
//
// Calling InstrumentHTTP several times on one registerer is safe: the metric
// vectors are registered once and shared, each call using its own component
// label. Two calls with the same component add into the same series. It
// panics only when reg already holds a different collector under these
// metric names, which is a wiring bug found at start-up.
func InstrumentHTTP(reg prometheus.Registerer, component string, tp trace.TracerProvider, next http.Handler) http.Handler {
	m, err := registerHTTPMetrics(reg)
	if err != nil {
		panic(fmt.Sprintf("telemetry.InstrumentHTTP(%q): %v", component, err))
	}
	var h http.Handler = &instrumented{
		next:      next,
		component: component,
		requests:  m.requests.MustCurryWith(prometheus.Labels{"component": component}),
		duration:  m.duration.MustCurryWith(prometheus.Labels{"component": component}),
		inFlight:  m.inFlight.WithLabelValues(component),
	}
	if tp != nil {
		h = otelhttp.NewHandler(h, component,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(Propagator()),
			// Request metrics are the Prometheus ones above; without an
			// explicit provider otelhttp would fall back to the global one.
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		)
	}
	return h
}

type instrumented struct {
	next      http.Handler
	component string
	requests  *prometheus.CounterVec // curried with component
	duration  prometheus.ObserverVec // curried with component
	inFlight  prometheus.Gauge
}

func (h *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.inFlight.Inc()
	code := 0
	// httpsnoop keeps the optional interfaces of w (Flusher, Hijacker,
	// ReaderFrom, …) that a plain wrapper struct would hide from handlers.
	ww := httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(c int) {
				if code == 0 && c >= 200 { // 1xx are interim, the final status follows
					code = c
				}
				next(c)
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				if code == 0 {
					code = http.StatusOK
				}
				return next(b)
			}
		},
		Hijack: func(next httpsnoop.HijackFunc) httpsnoop.HijackFunc {
			return func() (net.Conn, *bufio.ReadWriter, error) {
				if code == 0 {
					// The handler writes its own response on the raw
					// connection; in practice a WebSocket upgrade.
					code = http.StatusSwitchingProtocols
				}
				return next()
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				if code == 0 {
					code = http.StatusOK
				}
				return next(src)
			}
		},
	})
	done := false
	defer func() {
		h.inFlight.Dec()
		switch {
		case !done:
			// next panicked; net/http answers 500 or aborts the connection.
			code = http.StatusInternalServerError
		case code == 0:
			code = http.StatusOK // handler wrote nothing: net/http sends 200
		}
		route, method := routeLabel(r.Pattern), methodLabel(r.Method)
		if r.Method == http.MethodConnect && code >= 300 && code < 400 {
			// For CONNECT, ServeMux reports the redirect target (the
			// client's path plus "/") as the pattern: not bounded.
			route = RouteUnmatched
		}
		h.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
		h.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}()
	h.next.ServeHTTP(ww, r)
	done = true
}

// routeLabel turns a ServeMux pattern ("GET example.com/v1/x/{id}") into a
// route label ("example.com/v1/x/{id}"): the method has its own label.
func routeLabel(pattern string) string {
	if pattern == "" {
		return RouteUnmatched
	}
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	return pattern
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	default:
		return "OTHER"
	}
}
