//go:build !unix

package router

import "time"

// processCPU is not measured here; the cpu-ns/op metric is then omitted.
func processCPU() time.Duration { return 0 }
