package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/livecell/livecell/internal/buildinfo"
)

// TracingConfig chooses where a process sends its spans.
type TracingConfig struct {
	// Exporter is "none" (the default: spans are not recorded at all),
	// "stdout" (one JSON span per line, for debugging) or "otlp"
	// (OTLP/HTTP to a collector such as Tempo, Jaeger or the OTel Collector).
	Exporter string
	// Endpoint of the OTLP/HTTP receiver. "host:port" (e.g.
	// "127.0.0.1:4318", a collector next to the process) is spoken in
	// plaintext; a URL ("https://otel.example.com:4318") picks the scheme,
	// and "/v1/traces" is appended to its path unless already there.
	// Empty leaves it to OTEL_EXPORTER_OTLP_* variables, then the SDK's
	// default.
	Endpoint string
	// ServiceName is the service.name resource attribute ("livecell-router").
	ServiceName string
	// SampleRatio is the fraction of new traces recorded, in (0, 1]; 0
	// means 1. Traces started upstream keep the caller's decision, so one
	// trace is never half recorded.
	SampleRatio float64
	// Writer receives the spans of the stdout exporter; nil means os.Stdout.
	Writer io.Writer
}

// SetupTracing builds the tracer provider cfg describes. The caller passes
// it to whoever needs one (InstrumentHTTP, clients, consumers) and calls
// shutdown on exit to flush buffered spans. It is never installed as the
// OpenTelemetry global.
func SetupTracing(ctx context.Context, cfg TracingConfig) (trace.TracerProvider, func(context.Context) error, error) {
	exporterName := strings.ToLower(strings.TrimSpace(cfg.Exporter))
	if exporterName == "" || exporterName == "none" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	if !(ratio > 0 && ratio <= 1) { // also rejects NaN
		return nil, nil, fmt.Errorf("telemetry: sample ratio %v: want a value in (0, 1]", cfg.SampleRatio)
	}

	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch exporterName {
	case "stdout":
		w := cfg.Writer
		if w == nil {
			w = os.Stdout
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	case "otlp":
		var opts []otlptracehttp.Option
		switch ep := strings.TrimSpace(cfg.Endpoint); {
		case strings.Contains(ep, "://"):
			u, perr := url.Parse(ep)
			if perr != nil {
				return nil, nil, fmt.Errorf("telemetry: otlp endpoint %q: %w", ep, perr)
			}
			// Like OTEL_EXPORTER_OTLP_ENDPOINT, a URL names the collector's
			// base; the traces path is added unless it is already there.
			if !strings.HasSuffix(u.Path, "/v1/traces") {
				u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		case ep != "":
			opts = append(opts, otlptracehttp.WithEndpoint(ep), otlptracehttp.WithInsecure())
		}
		// New does not connect: a collector that is down costs dropped
		// spans, never a process that refuses to start.
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, nil, fmt.Errorf("telemetry: trace exporter %q: want none, stdout or otlp", cfg.Exporter)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %s exporter: %w", exporterName, err)
	}

	name := cfg.ServiceName
	if name == "" {
		name = "livecell"
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, e.g. deployment.environment
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", name),
			attribute.String("service.version", buildinfo.Get().Version),
		),
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, nil, fmt.Errorf("telemetry: trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return tp, tp.Shutdown, nil
}

// Propagator is the context propagation livecell uses on every hop (HTTP
// headers, gateway frame metadata, AMQP headers): W3C tracecontext plus W3C
// baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
