package router

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/config"
)

// syncBuffer is a log sink safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withSAEast is testCellsYAML plus one cell.
const withSAEast = testCellsYAML + `  - id: sa-east
    region: southamerica-east1
    gateway: 127.0.0.1:4150
    api: 127.0.0.1:4151
    capacity: 100
`

// reloadFixture is a router over a cells.yaml on disk.
type reloadFixture struct {
	*fixture
	path string
	logs *syncBuffer
	mod  time.Time
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	rf := &reloadFixture{path: filepath.Join(t.TempDir(), "cells.yaml"), logs: &syncBuffer{}, mod: time.Now().Add(-time.Hour)}
	rf.write(t, testCellsYAML)
	cells, err := config.Load(rf.path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{status: newStatus(cells), dir: newDir(), reg: prometheus.NewRegistry()}
	f.r, err = New(Config{Cells: cells, FailThreshold: 1}, Deps{
		Logger: slog.New(slog.NewTextHandler(rf.logs, nil)), Metrics: f.reg, Homes: f.dir, Status: f.status,
	})
	if err != nil {
		t.Fatal(err)
	}
	rf.fixture = f
	f.round(t, 1)
	return rf
}

// write replaces the file's content and moves its modification time
// forward, so that every write is seen whatever the file system's clock
// granularity.
// write replaces the file atomically (write a temporary file, then rename),
// as deploy tools do: the watcher polls every few milliseconds here and an
// in-place write could be read half-written, which is a distinct bad content.
func (rf *reloadFixture) write(t *testing.T, content string) {
	t.Helper()
	tmp := rf.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, rf.path); err != nil {
		t.Fatal(err)
	}
	rf.touch(t)
}

func (rf *reloadFixture) touch(t *testing.T) {
	t.Helper()
	rf.mod = rf.mod.Add(time.Second)
	if err := os.Chtimes(rf.path, rf.mod, rf.mod); err != nil {
		t.Fatal(err)
	}
}

func (rf *reloadFixture) counts(t *testing.T) (reloads, errs float64) {
	t.Helper()
	return metricValue(t, rf.r.m.reloads), metricValue(t, rf.r.m.reloadErrors)
}

func (rf *reloadFixture) cellIDs() []string {
	var ids []string
	for _, c := range rf.r.Cells().Cells {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestReloadSteps drives the watcher's checks one by one through a
// sequence of edits: every rejected file leaves the router on its last
// good config, every bad state is counted once.
func TestReloadSteps(t *testing.T) {
	rf := newReloadFixture(t)
	w := &cellsFile{r: rf.r, cfg: WatchConfig{Path: rf.path, Apply: rf.r.SetCells}}
	w.check(true)
	original := []string{"eu-west", "eu-north", "us-east", "ap-south"}

	steps := []struct {
		name        string
		edit        func(t *testing.T)
		wantReloads float64
		wantErrors  float64
		wantCells   []string
		wantLog     string // in the log when set
	}{
		{name: "unchanged", edit: func(*testing.T) {}, wantCells: original},
		{name: "broken YAML", edit: func(t *testing.T) { rf.write(t, "version: 1\ncells:\n  - id: [\n") },
			wantErrors: 1, wantCells: original, wantLog: "cells.yaml:3: YAML:"},
		{name: "same broken content touched", edit: func(t *testing.T) { rf.touch(t) },
			wantErrors: 1, wantCells: original},
		{name: "another problem: failover to an unknown cell", edit: func(t *testing.T) {
			rf.write(t, strings.Replace(testCellsYAML, "failover: [eu-west]", "failover: [eu-wset]", 1))
		}, wantErrors: 2, wantCells: original, wantLog: `cells.yaml:15: cell \"eu-north\": failover to unknown cell \"eu-wset\"`},
		{name: "deleted", edit: func(t *testing.T) {
			if err := os.Remove(rf.path); err != nil {
				t.Fatal(err)
			}
		}, wantErrors: 3, wantCells: original, wantLog: "no such file or directory"},
		{name: "still deleted", edit: func(*testing.T) {}, wantErrors: 3, wantCells: original},
		{name: "fixed, with a new cell", edit: func(t *testing.T) { rf.write(t, withSAEast) },
			wantReloads: 1, wantErrors: 3, wantCells: append(slices.Clone(original), "sa-east"), wantLog: "added=[sa-east]"},
		{name: "same content written again", edit: func(t *testing.T) { rf.write(t, withSAEast) },
			wantReloads: 1, wantErrors: 3, wantCells: append(slices.Clone(original), "sa-east")},
		{name: "cell removed", edit: func(t *testing.T) { rf.write(t, testCellsYAML) },
			wantReloads: 2, wantErrors: 3, wantCells: original, wantLog: "removed=[sa-east]"},
	}
	for _, st := range steps {
		st.edit(t)
		w.check(false)
		reloads, errs := rf.counts(t)
		if reloads != st.wantReloads || errs != st.wantErrors {
			t.Errorf("%s: reloads=%v errors=%v, want %v and %v", st.name, reloads, errs, st.wantReloads, st.wantErrors)
		}
		if got := rf.cellIDs(); !slices.Equal(got, st.wantCells) {
			t.Errorf("%s: cells %q, want %q", st.name, got, st.wantCells)
		}
		if st.wantLog != "" && !strings.Contains(rf.logs.String(), st.wantLog) {
			t.Errorf("%s: log lacks %q:\n%s", st.name, st.wantLog, rf.logs.String())
		}
		// Whatever the file did, players keep resolving from the last
		// good config.
		if res, err := rf.resolve(t, playerEU, ""); err != nil || res.HomeCell != "eu-west" {
			t.Errorf("%s: resolve(playerEU) = %+v, %v; want eu-west", st.name, res, err)
		}
	}
}

// TestWatchCellsFile runs the real polling loop: a good file, then a broken
// one (the router keeps answering from the old config and counts one
// error), then a fixed one with a new cell, which appears and takes players
// once probed.
func TestWatchCellsFile(t *testing.T) {
	rf := newReloadFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rf.r.WatchCellsFile(ctx, WatchConfig{Path: rf.path, Interval: 5 * time.Millisecond}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchCellsFile returned %v, want nil on cancel", err)
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, rf.logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	rf.write(t, strings.Replace(withSAEast, "capacity: 1000", "capacity: lots", 1))
	waitFor("the broken file to be rejected", func() bool { _, errs := rf.counts(t); return errs == 1 })
	time.Sleep(30 * time.Millisecond) // several more checks of the same bad file
	if reloads, errs := rf.counts(t); reloads != 0 || errs != 1 {
		t.Fatalf("after a broken file: reloads=%v errors=%v, want 0 and 1", reloads, errs)
	}
	if got, want := rf.cellIDs(), []string{"eu-west", "eu-north", "us-east", "ap-south"}; !slices.Equal(got, want) {
		t.Fatalf("cells after a broken file = %q, want the old %q", got, want)
	}
	if res, err := rf.resolve(t, playerUS, ""); err != nil || res.HomeCell != "us-east" || res.Placement != PlacementExisting {
		t.Fatalf("resolve after a broken file = %+v, %v; want us-east, existing", res, err)
	}
	if !strings.Contains(rf.logs.String(), `cells.yaml:20: cell \"us-east\": capacity: want an integer, got \"lots\"`) {
		t.Errorf("log lacks the line-numbered problem:\n%s", rf.logs.String())
	}

	rf.write(t, withSAEast)
	waitFor("the fixed file to be applied", func() bool { return slices.Contains(rf.cellIDs(), "sa-east") })
	if reloads, errs := rf.counts(t); reloads != 1 || errs != 1 {
		t.Fatalf("after the fix: reloads=%v errors=%v, want 1 and 1", reloads, errs)
	}
	rf.status.up("sa-east", 0)
	rf.round(t, 1)
	res, err := rf.resolve(t, "", "southamerica-east1")
	if err != nil || res.HomeCell != "sa-east" || res.Gateway != "127.0.0.1:4150" {
		t.Fatalf("resolve a new player hinting sa-east's region = %+v, %v; want sa-east at 127.0.0.1:4150", res, err)
	}
}

func TestWatchCellsFileNeedsAPath(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.r.WatchCellsFile(context.Background(), WatchConfig{}); err == nil {
		t.Fatal("WatchCellsFile without a path succeeded, want an error")
	}
}
