//go:build !unix

package accounts_test

import "time"

func processCPU() time.Duration     { return 0 }
func machineCPU() time.Duration     { return 0 }
func pidsCPU([]int32) time.Duration { return 0 }
