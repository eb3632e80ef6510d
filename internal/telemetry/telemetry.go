// Package telemetry is the observability plumbing every livecell process
// shares: JSON logs that Loki can ingest, a Prometheus registry per process
// with build information, RED metrics and OpenTelemetry traces for HTTP
// servers, and the debug endpoints (/metrics, /debug/pprof/, /buildinfo,
// /healthz).
//
// Nothing here touches process-wide state: there is no use of the
// Prometheus default registry or of the OpenTelemetry global providers.
// Registries and tracer providers are created here and passed explicitly, so
// several cells can run in one process (`livecell dev`, tests) without their
// metrics or traces mixing.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a logger writing to w in format "json" (the default, one
// object per line with time, level and msg keys, which Loki's json stage
// parses) or "text" (logfmt-like, for people at a terminal).
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("telemetry: log format %q: want json or text", format)
	}
}
