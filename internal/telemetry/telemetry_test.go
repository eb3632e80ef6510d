package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/livecell/livecell/internal/buildinfo"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		format  string
		wantErr bool
		check   func(t *testing.T, out string)
	}{
		{format: "", check: wantJSONLine},
		{format: "json", check: wantJSONLine},
		{format: "JSON", check: wantJSONLine},
		{format: "text", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="cell down"`) {
				t.Errorf("got %q, want a text line with level=WARN and msg", out)
			}
		}},
		{format: "xml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.format, slog.LevelInfo)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got nil error, want one for format %q", tt.format)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("below the level")
			log.Warn("cell down", "cell", "eu-west")
			tt.check(t, buf.String())
		})
	}
}

func wantJSONLine(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines %q, want 1 (debug is below the level)", len(lines), out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("got non-JSON line %q: %v", lines[0], err)
	}
	for k, want := range map[string]string{"level": "WARN", "msg": "cell down", "cell": "eu-west"} {
		if got, _ := rec[k].(string); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if _, ok := rec["time"]; !ok {
		t.Error("got no time key, want one for Loki")
	}
}

// metricValue returns the value of the series of name whose labels include
// want, and whether it exists.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// labelValues lists the values label takes across the series of name.
func labelValues(t *testing.T, g prometheus.Gatherer, name, label string) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	return out
}

func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/players/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.PathValue("id"))
	})
	mux.HandleFunc("POST /v1/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /v1/bad", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	})
	mux.HandleFunc("GET /v1/silent", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

func serve(h http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestInstrumentHTTPMetrics(t *testing.T) {
	for _, traced := range []bool{false, true} {
		name := "untraced"
		var tp trace.TracerProvider
		if traced {
			name = "traced"
			tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		}
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := InstrumentHTTP(reg, "api", tp, testMux())

			for _, id := range []string{"a", "b", "c"} {
				if rec := serve(h, "GET", "/v1/players/"+id, nil); rec.Code != 200 || rec.Body.String() != id {
					t.Fatalf("GET /v1/players/%s: got %d %q, want 200 %q", id, rec.Code, rec.Body, id)
				}
			}
			serve(h, "POST", "/v1/fail", nil)
			serve(h, "GET", "/v1/bad", nil)
			serve(h, "GET", "/v1/silent", nil)
			for i := range 5 {
				serve(h, "GET", "/random/"+strings.Repeat("x", i), nil)
			}
			serve(h, "BREW", "/v1/players/a", nil)

			tests := []struct {
				labels map[string]string
				want   float64
			}{
				{map[string]string{"component": "api", "route": "/v1/players/{id}", "method": "GET", "code": "200"}, 3},
				{map[string]string{"component": "api", "route": "/v1/fail", "method": "POST", "code": "500"}, 1},
				{map[string]string{"component": "api", "route": "/v1/bad", "method": "GET", "code": "400"}, 1},
				{map[string]string{"component": "api", "route": "/v1/silent", "method": "GET", "code": "200"}, 1},
				{map[string]string{"component": "api", "route": RouteUnmatched, "method": "GET", "code": "404"}, 5},
				{map[string]string{"component": "api", "route": RouteUnmatched, "method": "OTHER", "code": "405"}, 1},
			}
			for _, tt := range tests {
				got, ok := metricValue(t, reg, "livecell_http_requests_total", tt.labels)
				if !ok || got != tt.want {
					t.Errorf("requests%v: got %v (present %v), want %v", tt.labels, got, ok, tt.want)
				}
			}
			// Client-chosen paths never become label values.
			routes := labelValues(t, reg, "livecell_http_requests_total", "route")
			for _, r := range routes {
				if strings.HasPrefix(r, "/random") || strings.Contains(r, "/v1/players/a") {
					t.Errorf("got route label %q, want only patterns", r)
				}
			}
			if got, _ := metricValue(t, reg, "livecell_http_request_duration_seconds",
				map[string]string{"component": "api", "route": "/v1/players/{id}", "method": "GET"}); got != 3 {
				t.Errorf("duration samples: got %v, want 3", got)
			}
			if got, ok := metricValue(t, reg, "livecell_http_in_flight_requests", map[string]string{"component": "api"}); !ok || got != 0 {
				t.Errorf("in flight after requests: got %v (present %v), want 0", got, ok)
			}
		})
	}
}

// ServeMux puts the client's path into Request.Pattern when it redirects a
// CONNECT request; that must not become a label value.
func TestInstrumentHTTPConnectRedirect(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("/a/{id}/", func(w http.ResponseWriter, r *http.Request) {})
	h := InstrumentHTTP(reg, "api", nil, mux)
	for _, id := range []string{"x1", "x2", "x3"} {
		req := httptest.NewRequest("CONNECT", "/a/"+id, nil)
		req.URL.Host = ""
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusTemporaryRedirect {
			t.Fatalf("CONNECT /a/%s: got %d, want the mux's 307", id, rec.Code)
		}
	}
	for _, r := range labelValues(t, reg, "livecell_http_requests_total", "route") {
		if r != RouteUnmatched {
			t.Errorf("got route label %q, want only %q", r, RouteUnmatched)
		}
	}
}

func TestInstrumentHTTPInFlight(t *testing.T) {
	reg := prometheus.NewRegistry()
	var during float64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		during, _ = metricValue(t, reg, "livecell_http_in_flight_requests", map[string]string{"component": "api"})
	})
	serve(InstrumentHTTP(reg, "api", nil, mux), "GET", "/slow", nil)
	if during != 1 {
		t.Errorf("in flight while serving: got %v, want 1", during)
	}
}

func TestInstrumentHTTPPanicCounts500(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	h := InstrumentHTTP(reg, "api", nil, mux)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("got no panic, want the handler's panic to propagate to net/http")
			}
		}()
		serve(h, "GET", "/panic", nil)
	}()
	if got, _ := metricValue(t, reg, "livecell_http_requests_total", map[string]string{"route": "/panic", "code": "500"}); got != 1 {
		t.Errorf("panicking request: got %v, want 1 counted as 500", got)
	}
	if got, _ := metricValue(t, reg, "livecell_http_in_flight_requests", nil); got != 0 {
		t.Errorf("in flight after panic: got %v, want 0", got)
	}
}

func TestInstrumentHTTPSharedRegisterer(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		// Two servers on one registry must not panic and keep their own
		// component label; the same component twice shares its series.
		a := InstrumentHTTP(reg, "api", nil, testMux())
		b := InstrumentHTTP(reg, "admin", nil, testMux())
		a2 := InstrumentHTTP(reg, "api", nil, testMux())
		serve(a, "GET", "/v1/silent", nil)
		serve(a2, "GET", "/v1/silent", nil)
		serve(b, "GET", "/v1/silent", nil)
		for comp, want := range map[string]float64{"api": 2, "admin": 1} {
			if got, _ := metricValue(t, reg, "livecell_http_requests_total", map[string]string{"component": comp}); got != want {
				t.Errorf("requests{component=%s}: got %v, want %v", comp, got, want)
			}
		}
	})
	t.Run("wrapped", func(t *testing.T) {
		// Several cells in one process, each with a cell label on a shared
		// registry, each instrumenting twice.
		reg := prometheus.NewRegistry()
		eu := prometheus.WrapRegistererWith(prometheus.Labels{"cell": "eu-west"}, reg)
		us := prometheus.WrapRegistererWith(prometheus.Labels{"cell": "us-east"}, reg)
		for _, h := range []http.Handler{
			InstrumentHTTP(eu, "cell", nil, testMux()),
			InstrumentHTTP(eu, "cell", nil, testMux()),
			InstrumentHTTP(us, "cell", nil, testMux()),
		} {
			serve(h, "GET", "/v1/silent", nil)
		}
		for cell, want := range map[string]float64{"eu-west": 2, "us-east": 1} {
			if got, _ := metricValue(t, reg, "livecell_http_requests_total", map[string]string{"cell": cell}); got != want {
				t.Errorf("requests{cell=%s}: got %v, want %v", cell, got, want)
			}
		}
	})
}

func TestInstrumentHTTPConflictPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_http_requests_total", Help: "someone else's",
	}, []string{"x"}))
	defer func() {
		if recover() == nil {
			t.Error("got no panic, want one for a clashing metric name")
		}
	}()
	InstrumentHTTP(reg, "api", nil, testMux())
}

func TestRouteLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", RouteUnmatched},
		{"/", "/"},
		{"/v1/resolve", "/v1/resolve"},
		{"GET /v1/players/{id}", "/v1/players/{id}"},
		{"POST  example.com/x/", "example.com/x/"},
	}
	for _, tt := range tests {
		if got := routeLabel(tt.in); got != tt.want {
			t.Errorf("routeLabel(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTracePropagation(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()

	var inHandler trace.SpanContext
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/players/{id}", func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
	})
	h := InstrumentHTTP(reg, "api", tp, mux)

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00f067aa0ba902b7"
	)
	serve(h, "GET", "/v1/players/p1", http.Header{"Traceparent": {"00-" + traceID + "-" + parent + "-01"}})

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if got := s.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace id: got %s, want %s (from traceparent)", got, traceID)
	}
	if got := s.Parent().SpanID().String(); got != parent || !s.Parent().IsRemote() {
		t.Errorf("parent: got %s (remote %v), want remote %s", got, s.Parent().IsRemote(), parent)
	}
	if got, want := s.Name(), "GET /v1/players/{id}"; got != want {
		t.Errorf("span name: got %q, want %q", got, want)
	}
	if inHandler.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("handler context span: got %s, want the server span %s", inHandler.SpanID(), s.SpanContext().SpanID())
	}
	// The route label survives the tracing layer in front of the metrics.
	if got, _ := metricValue(t, reg, "livecell_http_requests_total", map[string]string{"route": "/v1/players/{id}"}); got != 1 {
		t.Errorf("requests with route under tracing: got %v, want 1", got)
	}
}

func TestPropagatorRoundTrip(t *testing.T) {
	p := Propagator()
	carrier := propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage":     "player=p1",
	}
	ctx := p.Extract(context.Background(), carrier)
	out := propagation.MapCarrier{}
	p.Inject(ctx, out)
	for _, k := range []string{"traceparent", "baggage"} {
		if out[k] != carrier[k] {
			t.Errorf("%s: got %q, want %q", k, out[k], carrier[k])
		}
	}
}

func TestSetupTracing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		cfg       TracingConfig
		wantErr   string
		recording bool
	}{
		{name: "default is none", cfg: TracingConfig{}},
		{name: "none", cfg: TracingConfig{Exporter: "none"}},
		{name: "stdout", cfg: TracingConfig{Exporter: "stdout", ServiceName: "test"}, recording: true},
		{name: "unknown exporter", cfg: TracingConfig{Exporter: "zipkin"}, wantErr: `"zipkin"`},
		{name: "ratio above 1", cfg: TracingConfig{Exporter: "stdout", SampleRatio: 2}, wantErr: "sample ratio"},
		{name: "negative ratio", cfg: TracingConfig{Exporter: "stdout", SampleRatio: -0.1}, wantErr: "sample ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Writer = io.Discard
			tp, shutdown, err := SetupTracing(ctx, tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(ctx, "op")
			if got := span.IsRecording(); got != tt.recording {
				t.Errorf("span recording: got %v, want %v", got, tt.recording)
			}
			span.End()
			if err := shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

func TestSetupTracingStdoutWritesSpans(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	tp, shutdown, err := SetupTracing(ctx, TracingConfig{Exporter: "stdout", ServiceName: "livecell-test", Writer: &buf})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(ctx, "resolve-player")
	span.End()
	if err := shutdown(ctx); err != nil { // flushes the batcher
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"Name":"resolve-player"`, `"livecell-test"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout spans: got %q, want it to contain %s", out, want)
		}
	}
}

func TestNewRegistryAndDebugMux(t *testing.T) {
	reg := NewRegistry("router")
	mux := DebugMux(reg)
	_ = DebugMux(reg) // a second mux on the same registry must not panic

	bi := buildinfo.Get()
	rec := serve(mux, "GET", "/metrics", nil)
	if rec.Code != 200 {
		t.Fatalf("/metrics: got %d, want 200", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`livecell_build_info{commit="` + bi.Commit + `",component="router",goversion="` + bi.GoVersion + `",version="` + bi.Version + `"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics: want it to contain %s", want)
		}
	}

	rec = serve(mux, "GET", "/buildinfo", nil)
	var got buildinfo.Info
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("/buildinfo: got %d %q (%v), want 200 JSON", rec.Code, rec.Body, err)
	}
	if got != bi {
		t.Errorf("/buildinfo: got %+v, want %+v", got, bi)
	}

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", 200, "ok"},
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"/debug/pprof/cmdline", 200, ""},
		{"/nope", 404, ""},
	}
	for _, tt := range tests {
		rec := serve(mux, "GET", tt.path, nil)
		if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
			t.Errorf("GET %s: got %d, want %d with %q", tt.path, rec.Code, tt.wantCode, tt.wantBody)
		}
	}
}

func TestRegisterHelper(t *testing.T) {
	reg := prometheus.NewRegistry()
	newC := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a"})
	}
	first, err := Register(reg, newC())
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, newC())
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("got a new collector, want the one already registered")
	}
	if _, err := Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_total", Help: "x"}, []string{"a"})); err == nil {
		t.Error("got nil error registering a gauge over a counter, want one")
	}
}

// TestSetupTracingOTLP checks that spans reach an OTLP/HTTP receiver, given
// as host:port and as a URL.
func TestSetupTracingOTLP(t *testing.T) {
	type post struct{ path, contentType string }
	got := make(chan post, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- post{r.URL.Path, r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	for _, ep := range []string{strings.TrimPrefix(collector.URL, "http://"), collector.URL, collector.URL + "/v1/traces"} {
		t.Run(ep, func(t *testing.T) {
			ctx := context.Background()
			tp, shutdown, err := SetupTracing(ctx, TracingConfig{Exporter: "otlp", Endpoint: ep, ServiceName: "test"})
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(ctx, "op")
			span.End()
			if err := shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			select {
			case p := <-got:
				if p.path != "/v1/traces" || p.contentType != "application/x-protobuf" {
					t.Errorf("got POST %s (%s), want /v1/traces (application/x-protobuf)", p.path, p.contentType)
				}
			default:
				t.Error("got no export at shutdown, want one")
			}
		})
	}
}

func TestInstrumentHTTPKeepsInterfaces(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack through the wrapper: %v", err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		_ = brw.Flush()
		_ = conn.Close()
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("got a ResponseWriter without Flush, want the wrapper to keep it")
		}
	})
	srv := httptest.NewServer(InstrumentHTTP(reg, "api", nil, mux))
	defer srv.Close()
	for _, path := range []string{"/ws", "/stream"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
	}
	// The client can see the hijacked response before the handler returns
	// and the middleware records it, so wait (bounded) for the count.
	for _, tt := range []struct{ route, code string }{{"/ws", "101"}, {"/stream", "200"}} {
		var got float64
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if got, _ = metricValue(t, reg, "livecell_http_requests_total", map[string]string{"route": tt.route, "code": tt.code}); got == 1 {
				break
			}
		}
		if got != 1 {
			t.Errorf("requests{route=%s,code=%s}: got %v, want 1", tt.route, tt.code, got)
		}
	}
}
