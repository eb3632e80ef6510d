package telemetry

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/livecell/livecell/internal/buildinfo"
)

// NewRegistry returns a fresh registry for one process (or one in-process
// component) holding the Go runtime and process collectors and
// livecell_build_info{component,version,commit,goversion} = 1, so every
// scrape says which build answered.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Get()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livecell_build_info",
		Help: "Build of the running component; always 1, the information is in the labels.",
		ConstLabels: prometheus.Labels{
			"component": component,
			"version":   bi.Version,
			"commit":    bi.Commit,
			"goversion": bi.GoVersion,
		},
	})
	info.Set(1)
	// A fresh registry cannot hold these yet, so MustRegister cannot panic.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	)
	return reg
}

// Register registers c with reg and returns it, or returns the collector
// already registered under the same descriptors. This lets two servers (or
// two cells) in one process share one registerer: the second registration
// reuses the first's metric vectors instead of panicking. It fails when the
// existing collector has another type or the descriptors clash.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
		var zero C
		return zero, fmt.Errorf("telemetry: a collector of type %T is already registered with the same descriptors", are.ExistingCollector)
	}
	var zero C
	return zero, fmt.Errorf("telemetry: register: %w", err)
}
