package chaos

import (
	"context"
	"strings"
	"testing"

	"github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/internal/config"
)

func TestDistribution(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []float64
		want Distribution
	}{
		{"none", nil, Distribution{}},
		{"one", []float64{7}, Distribution{N: 1, MinMS: 7, P50MS: 7, P99MS: 7, MaxMS: 7}},
		// Nearest rank: p50 of 4 samples is the 2nd, p99 the 4th.
		{"four unsorted", []float64{400, 100, 300, 200}, Distribution{N: 4, MinMS: 100, P50MS: 200, P99MS: 400, MaxMS: 400}},
		{"hundred", seq(100), Distribution{N: 100, MinMS: 1, P50MS: 50, P99MS: 99, MaxMS: 100}},
	} {
		if got := distribution(tt.in); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(n - i) // descending: distribution must sort
	}
	return out
}

func TestKillCellRefusesWhatCannotBeMeasured(t *testing.T) {
	cells, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	// A world whose processes are all gone: nothing to kill.
	dead := &world.State{Dir: t.TempDir(), Processes: []world.Process{
		{Name: "cell-eu-west", Role: world.RoleCell, Cell: "eu-west"},
		{Name: "cell-us-east", Role: world.RoleCell, Cell: "us-east"},
	}}
	for _, tt := range []struct {
		name string
		o    KillCellOptions
		want string
	}{
		{"no world", KillCellOptions{Cell: "eu-west"}, "World is required"},
		{"no cell", KillCellOptions{World: dead, Cells: cells}, "Cell is required"},
		{"unknown cell", KillCellOptions{World: dead, Cells: cells, Cell: "mars"}, `"mars" is not in`},
		{"cell not running", KillCellOptions{World: dead, Cells: cells, Cell: "eu-west"}, "no running process"},
	} {
		_, err := KillCell(context.Background(), tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}
