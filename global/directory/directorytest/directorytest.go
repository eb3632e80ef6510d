// Package directorytest is the contract every player-home directory must
// meet, run against each implementation (in memory, PostgreSQL) so that
// `livecell dev` and production behave alike.
package directorytest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
)

// Store is the directory as its users see it.
type Store interface {
	Home(ctx context.Context, playerID string) (string, error)
	SetHome(ctx context.Context, playerID, cellID string) error
	Place(ctx context.Context, playerID, cellID string) (home string, created bool, err error)
	CountByCell(ctx context.Context) (map[string]int, error)

	SetOverride(ctx context.Context, o directory.Override) (directory.Override, error)
	ClearOverride(ctx context.Context, playerID string) (bool, error)
	Overrides(ctx context.Context) ([]directory.Override, error)

	RecordMove(ctx context.Context, playerID, from, to string) (directory.Move, error)
	Moves(ctx context.Context, cell string, after int64, limit int) ([]directory.Move, error)
	MoveHead(ctx context.Context) (int64, error)
	PruneMoves(ctx context.Context, before time.Time) (int, error)

	SetCellState(ctx context.Context, s directory.CellState) (directory.CellState, error)
	ClearCellState(ctx context.Context, cell string) (bool, error)
	CellStates(ctx context.Context) ([]directory.CellState, error)
}

// Run runs the contract. newStore must return an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"UnknownPlayer", testUnknownPlayer},
		{"SetThenHome", testSetThenHome},
		{"Rehome", testRehome},
		{"SetHomeIsIdempotent", testSetHomeIsIdempotent},
		{"CountByCell", testCountByCell},
		{"AwkwardIDs", testAwkwardIDs},
		{"NoPatternMatching", testNoPatternMatching},
		{"InvalidIDs", testInvalidIDs},
		{"ConcurrentSetHome", testConcurrentSetHome},
		{"Place", testPlace},
		{"ConcurrentPlace", testConcurrentPlace},
		{"Overrides", testOverrides},
		{"InvalidOverrides", testInvalidOverrides},
		{"OverridesAreBounded", testOverridesAreBounded},
		{"Moves", testMoves},
		{"InvalidMoves", testInvalidMoves},
		{"CellStates", testCellStates},
		{"InvalidCellStates", testInvalidCellStates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

func mustSet(t *testing.T, s Store, playerID, cellID string) {
	t.Helper()
	if err := s.SetHome(t.Context(), playerID, cellID); err != nil {
		t.Fatalf("SetHome(%q, %q): %v", playerID, cellID, err)
	}
}

func wantHome(t *testing.T, s Store, playerID, want string) {
	t.Helper()
	got, err := s.Home(t.Context(), playerID)
	if err != nil {
		t.Fatalf("Home(%q): %v, want %q", playerID, err, want)
	}
	if got != want {
		t.Errorf("Home(%q) = %q, want %q", playerID, got, want)
	}
}

func wantUnknown(t *testing.T, s Store, playerID string) {
	t.Helper()
	got, err := s.Home(t.Context(), playerID)
	if code := apierr.CodeOf(err); code != apierr.UnknownPlayer {
		t.Errorf("Home(%q) = %q, %v; want code %q", playerID, got, err, apierr.UnknownPlayer)
	}
}

func wantCounts(t *testing.T, s Store, want map[string]int) {
	t.Helper()
	got, err := s.CountByCell(t.Context())
	if err != nil {
		t.Fatalf("CountByCell: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("CountByCell = %v, want %v", got, want)
	}
}

func testUnknownPlayer(t *testing.T, s Store) {
	_, err := s.Home(t.Context(), "nobody")
	if got, want := apierr.CodeOf(err), apierr.UnknownPlayer; got != want {
		t.Fatalf("Home(nobody) code = %q (err %v), want %q", got, err, want)
	}
	if got, want := apierr.MessageOf(err), "unknown player"; got != want {
		t.Errorf("Home(nobody) message = %q, want %q", got, want)
	}
	if got, want := apierr.CodeOf(err).HTTPStatus(), 404; got != want {
		t.Errorf("Home(nobody) HTTP status = %d, want %d", got, want)
	}
	wantUnknown(t, s, "")
}

func testSetThenHome(t *testing.T, s Store) {
	mustSet(t, s, "p1", "eu-west")
	mustSet(t, s, "p2", "us-east")
	wantHome(t, s, "p1", "eu-west")
	wantHome(t, s, "p2", "us-east")
	wantUnknown(t, s, "p3")
}

func testRehome(t *testing.T, s Store) {
	mustSet(t, s, "p1", "eu-west")
	mustSet(t, s, "p2", "eu-west")
	mustSet(t, s, "p1", "us-east")
	wantHome(t, s, "p1", "us-east")
	wantHome(t, s, "p2", "eu-west")
	wantCounts(t, s, map[string]int{"eu-west": 1, "us-east": 1})
	mustSet(t, s, "p2", "us-east")
	wantCounts(t, s, map[string]int{"us-east": 2})
}

func testSetHomeIsIdempotent(t *testing.T, s Store) {
	for range 3 {
		mustSet(t, s, "p1", "eu-west")
	}
	wantHome(t, s, "p1", "eu-west")
	wantCounts(t, s, map[string]int{"eu-west": 1})
}

func testCountByCell(t *testing.T, s Store) {
	wantCounts(t, s, map[string]int{})
	for i := range 7 {
		cell := []string{"a", "b", "c"}[i%3]
		mustSet(t, s, fmt.Sprintf("p%d", i), cell)
	}
	wantCounts(t, s, map[string]int{"a": 3, "b": 2, "c": 2})
}

// testAwkwardIDs stores ids full of SQL and shell metacharacters: they must
// round-trip byte for byte and stay distinct from their neighbours.
func testAwkwardIDs(t *testing.T, s Store) {
	ids := []string{
		"'; DROP TABLE player_homes; --",
		`"quoted"`,
		`back\slash`,
		"$1",
		"p1 ",
		" p1",
		"P1",
		"p1",
		"プレイヤー",
		"tab\there",
		"new\nline",
		"emoji 🎮",
	}
	for i, id := range ids {
		mustSet(t, s, id, fmt.Sprintf("cell-'%d\"", i))
	}
	for i, id := range ids {
		wantHome(t, s, id, fmt.Sprintf("cell-'%d\"", i))
	}
	got, err := s.CountByCell(t.Context())
	if err != nil {
		t.Fatalf("CountByCell: %v", err)
	}
	if len(got) != len(ids) {
		t.Errorf("CountByCell has %d cells, want %d (one per id)", len(got), len(ids))
	}
}

// testNoPatternMatching guards against lookups built with LIKE or regexps.
func testNoPatternMatching(t *testing.T, s Store) {
	mustSet(t, s, "abc", "c1")
	mustSet(t, s, "100%", "c2")
	for _, id := range []string{"a%", "a_c", "%", "_bc", "ab.", "a.*", "100_", "ABC"} {
		wantUnknown(t, s, id)
	}
	wantHome(t, s, "100%", "c2")
}

func testInvalidIDs(t *testing.T, s Store) {
	tests := []struct {
		name, player, cell string
	}{
		{"empty player", "", "c1"},
		{"empty cell", "p1", ""},
		{"NUL in player", "p\x001", "c1"},
		{"NUL in cell", "p1", "c\x00"},
		{"invalid UTF-8", "p\xff", "c1"},
	}
	for _, tt := range tests {
		err := s.SetHome(t.Context(), tt.player, tt.cell)
		if code := apierr.CodeOf(err); code != apierr.BadRequest {
			t.Errorf("%s: SetHome(%q, %q) = %v, want code %q", tt.name, tt.player, tt.cell, err, apierr.BadRequest)
		}
	}
	wantUnknown(t, s, "p\x001")
	wantUnknown(t, s, "p\xff")
	wantCounts(t, s, map[string]int{})
}

// testConcurrentSetHome places many players at once while several writers
// fight over one player; afterwards every player has exactly one home and
// the counts add up.
func testConcurrentSetHome(t *testing.T, s Store) {
	const players, fighters = 40, 8
	cells := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	errs := make(chan error, players+fighters)
	for i := range players {
		wg.Go(func() { errs <- s.SetHome(t.Context(), fmt.Sprintf("p%d", i), cells[i%len(cells)]) })
	}
	for i := range fighters {
		wg.Go(func() { errs <- s.SetHome(t.Context(), "contested", cells[i%len(cells)]) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent SetHome: %v", err)
		}
	}
	for i := range players {
		wantHome(t, s, fmt.Sprintf("p%d", i), cells[i%len(cells)])
	}
	home, err := s.Home(t.Context(), "contested")
	if err != nil {
		t.Fatalf("Home(contested): %v", err)
	}
	if !slices.Contains(cells, home) {
		t.Errorf("Home(contested) = %q, want one of %v", home, cells)
	}
	want := map[string]int{"a": 10, "b": 10, "c": 10, "d": 10}
	want[home]++
	wantCounts(t, s, want)
}

func testPlace(t *testing.T, s Store) {
	ctx := t.Context()
	home, created, err := s.Place(ctx, "p1", "eu-west")
	if err != nil || home != "eu-west" || !created {
		t.Fatalf("Place(p1, eu-west) on an empty directory = %q, %v, %v; want eu-west, true, nil", home, created, err)
	}
	// A second placement never moves the player: it reports the home.
	home, created, err = s.Place(ctx, "p1", "us-east")
	if err != nil || home != "eu-west" || created {
		t.Errorf("Place(p1, us-east) after eu-west = %q, %v, %v; want eu-west, false, nil", home, created, err)
	}
	wantHome(t, s, "p1", "eu-west")
	wantCounts(t, s, map[string]int{"eu-west": 1})
	for _, tt := range []struct{ player, cell string }{{"", "c1"}, {"p2", ""}, {"p\x00", "c1"}, {"p2", "c\xff"}} {
		if _, _, err := s.Place(ctx, tt.player, tt.cell); apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("Place(%q, %q) = %v, want code %s", tt.player, tt.cell, err, apierr.BadRequest)
		}
	}
	wantCounts(t, s, map[string]int{"eu-west": 1})
}

// testConcurrentPlace: many cells place one player at once; exactly one
// wins and every caller learns the same home.
func testConcurrentPlace(t *testing.T, s Store) {
	const n = 12
	cells := []string{"a", "b", "c", "d"}
	homes := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { homes[i], created[i], errs[i] = s.Place(t.Context(), "contested", cells[i%len(cells)]) })
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Place #%d: %v", i, errs[i])
		}
		if homes[i] != homes[0] {
			t.Errorf("Place #%d saw home %q, #0 saw %q: callers disagree", i, homes[i], homes[0])
		}
		if created[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d placements reported created, want exactly 1", winners)
	}
	wantHome(t, s, "contested", homes[0])
}

func testOverrides(t *testing.T, s Store) {
	ctx := t.Context()
	if got, err := s.Overrides(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Overrides on an empty directory = %v, %v; want none", got, err)
	}
	before := time.Now().Add(-time.Second)
	pin, err := s.SetOverride(ctx, directory.Override{PlayerID: "p2", Kind: directory.Pin, Cell: "canary", Reason: "QA: build 1.2", By: "ops/alice"})
	if err != nil {
		t.Fatalf("SetOverride(pin): %v", err)
	}
	if pin.At.Before(before) || pin.At.After(time.Now().Add(time.Second)) {
		t.Errorf("pin.At = %v, want about now", pin.At)
	}
	q, err := s.SetOverride(ctx, directory.Override{PlayerID: "p1", Kind: directory.Quarantine, Reason: "cheating"})
	if err != nil {
		t.Fatalf("SetOverride(quarantine): %v", err)
	}
	got, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by player id, fields round-trip.
	want := []directory.Override{q, pin}
	if !slices.EqualFunc(got, want, sameOverride) {
		t.Errorf("Overrides = %+v, want %+v", got, want)
	}
	// Replacing keeps one entry per player.
	q2, err := s.SetOverride(ctx, directory.Override{PlayerID: "p1", Kind: directory.Quarantine, Cell: "jail", Reason: "cheating, again"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Overrides(ctx); !slices.EqualFunc(got, []directory.Override{q2, pin}, sameOverride) {
		t.Errorf("after replacing p1: Overrides = %+v, want %+v", got, []directory.Override{q2, pin})
	}
	if ok, err := s.ClearOverride(ctx, "p1"); err != nil || !ok {
		t.Errorf("ClearOverride(p1) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.ClearOverride(ctx, "p1"); err != nil || ok {
		t.Errorf("second ClearOverride(p1) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.ClearOverride(ctx, "p\x00"); err != nil || ok {
		t.Errorf("ClearOverride(invalid id) = %v, %v; want false, nil", ok, err)
	}
	if got, _ := s.Overrides(ctx); !slices.EqualFunc(got, []directory.Override{pin}, sameOverride) {
		t.Errorf("after clearing p1: Overrides = %+v, want %+v", got, []directory.Override{pin})
	}
	// Overrides do not touch homes.
	wantUnknown(t, s, "p2")
}

func sameOverride(a, b directory.Override) bool {
	return a.PlayerID == b.PlayerID && a.Kind == b.Kind && a.Cell == b.Cell && a.Reason == b.Reason && a.By == b.By && a.At.Equal(b.At)
}

func testInvalidOverrides(t *testing.T, s Store) {
	long := strings.Repeat("x", directory.MaxNoteLength+1)
	tests := []struct {
		name string
		o    directory.Override
	}{
		{"no player", directory.Override{Kind: directory.Quarantine}},
		{"NUL in player", directory.Override{PlayerID: "p\x001", Kind: directory.Quarantine}},
		{"unknown kind", directory.Override{PlayerID: "p1", Kind: "ban"}},
		{"no kind", directory.Override{PlayerID: "p1"}},
		{"pin without cell", directory.Override{PlayerID: "p1", Kind: directory.Pin}},
		{"invalid cell", directory.Override{PlayerID: "p1", Kind: directory.Pin, Cell: "c\xff"}},
		{"reason too long", directory.Override{PlayerID: "p1", Kind: directory.Quarantine, Reason: long}},
		{"NUL in reason", directory.Override{PlayerID: "p1", Kind: directory.Quarantine, Reason: "a\x00b"}},
		{"invalid UTF-8 in by", directory.Override{PlayerID: "p1", Kind: directory.Quarantine, By: "\xff"}},
	}
	for _, tt := range tests {
		if _, err := s.SetOverride(t.Context(), tt.o); apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("%s: SetOverride = %v, want code %s", tt.name, err, apierr.BadRequest)
		}
	}
	if got, err := s.Overrides(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("after rejected overrides: Overrides = %+v, %v; want none", got, err)
	}
}

// testOverridesAreBounded fills the table to MaxOverrides: one more player
// is refused with conflict, existing entries can still be replaced.
func testOverridesAreBounded(t *testing.T, s Store) {
	if testing.Short() {
		t.Skip("fills the override table")
	}
	ctx := t.Context()
	for i := range directory.MaxOverrides {
		if _, err := s.SetOverride(ctx, directory.Override{PlayerID: fmt.Sprintf("p%05d", i), Kind: directory.Quarantine}); err != nil {
			t.Fatalf("SetOverride #%d: %v", i, err)
		}
	}
	_, err := s.SetOverride(ctx, directory.Override{PlayerID: "one-too-many", Kind: directory.Quarantine})
	if apierr.CodeOf(err) != apierr.Conflict {
		t.Errorf("SetOverride beyond MaxOverrides = %v, want code %s", err, apierr.Conflict)
	}
	if _, err := s.SetOverride(ctx, directory.Override{PlayerID: "p00007", Kind: directory.Pin, Cell: "c1"}); err != nil {
		t.Errorf("replacing an entry of a full table: %v", err)
	}
	got, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != directory.MaxOverrides {
		t.Errorf("Overrides has %d entries, want %d", len(got), directory.MaxOverrides)
	}
}

func testMoves(t *testing.T, s Store) {
	ctx := t.Context()
	if got, err := s.Moves(ctx, "", 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("Moves on an empty directory = %v, %v; want none", got, err)
	}
	if head, err := s.MoveHead(ctx); err != nil || head != 0 {
		t.Errorf("MoveHead of an empty directory = %d, %v; want 0", head, err)
	}
	m1 := mustMove(t, s, "p1", "a", "b")
	m2 := mustMove(t, s, "p2", "c", "d")
	m3 := mustMove(t, s, "p1", "b", "a")
	if head, err := s.MoveHead(ctx); err != nil || head != m3.Seq {
		t.Errorf("MoveHead = %d, %v; want the latest seq %d", head, err, m3.Seq)
	}
	if !(m1.Seq < m2.Seq && m2.Seq < m3.Seq) {
		t.Errorf("seqs %d, %d, %d: want increasing", m1.Seq, m2.Seq, m3.Seq)
	}
	tests := []struct {
		cell  string
		after int64
		limit int
		want  []directory.Move
	}{
		{"", 0, 0, []directory.Move{m1, m2, m3}},
		{"a", 0, 0, []directory.Move{m1, m3}}, // from a, then back to a
		{"b", 0, 0, []directory.Move{m1, m3}},
		{"d", 0, 0, []directory.Move{m2}},
		{"a", m1.Seq, 0, []directory.Move{m3}},
		{"", 0, 2, []directory.Move{m1, m2}},
		{"", m3.Seq, 0, nil},
		{"zz", 0, 0, nil},
		{"c\x00", 0, 0, nil},
	}
	for _, tt := range tests {
		got, err := s.Moves(ctx, tt.cell, tt.after, tt.limit)
		if err != nil {
			t.Fatalf("Moves(%q, %d, %d): %v", tt.cell, tt.after, tt.limit, err)
		}
		if !slices.EqualFunc(got, tt.want, sameMove) {
			t.Errorf("Moves(%q, %d, %d) = %+v, want %+v", tt.cell, tt.after, tt.limit, got, tt.want)
		}
	}
	if n, err := s.PruneMoves(ctx, m1.At.Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("PruneMoves(an hour before the first) = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.PruneMoves(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Errorf("PruneMoves(in an hour) = %d, %v; want 3, nil", n, err)
	}
	if got, _ := s.Moves(ctx, "", 0, 0); len(got) != 0 {
		t.Errorf("Moves after pruning all = %+v, want none", got)
	}
	if head, err := s.MoveHead(ctx); err != nil || head != 0 {
		t.Errorf("MoveHead after pruning all = %d, %v; want 0", head, err)
	}
	// Sequence numbers never go back, even after pruning.
	if m4 := mustMove(t, s, "p3", "a", "b"); m4.Seq <= m3.Seq {
		t.Errorf("seq after pruning = %d, want above %d", m4.Seq, m3.Seq)
	}
}

func mustMove(t *testing.T, s Store, player, from, to string) directory.Move {
	t.Helper()
	mv, err := s.RecordMove(t.Context(), player, from, to)
	if err != nil {
		t.Fatalf("RecordMove(%s, %s, %s): %v", player, from, to, err)
	}
	if mv.PlayerID != player || mv.From != from || mv.To != to || mv.At.IsZero() {
		t.Errorf("RecordMove(%s, %s, %s) = %+v", player, from, to, mv)
	}
	return mv
}

func sameMove(a, b directory.Move) bool {
	return a.Seq == b.Seq && a.PlayerID == b.PlayerID && a.From == b.From && a.To == b.To && a.At.Equal(b.At)
}

func testInvalidMoves(t *testing.T, s Store) {
	for _, tt := range []struct{ player, from, to string }{{"", "a", "b"}, {"p1", "", "b"}, {"p1", "a", ""}, {"p\x00", "a", "b"}, {"p1", "a\xff", "b"}} {
		if _, err := s.RecordMove(t.Context(), tt.player, tt.from, tt.to); apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("RecordMove(%q, %q, %q) = %v, want code %s", tt.player, tt.from, tt.to, err, apierr.BadRequest)
		}
	}
	if got, _ := s.Moves(t.Context(), "", 0, 0); len(got) != 0 {
		t.Errorf("after rejected moves: Moves = %+v, want none", got)
	}
}

func testCellStates(t *testing.T, s Store) {
	ctx := t.Context()
	if got, err := s.CellStates(ctx); err != nil || len(got) != 0 {
		t.Fatalf("CellStates on an empty directory = %v, %v; want none", got, err)
	}
	d := directory.CellState{Cell: "eu-west", State: directory.CellStateDraining, DrainBatch: 50, DrainInterval: 1500 * time.Millisecond, Reason: "kernel upgrade", By: "ops/bob"}
	got1, err := s.SetCellState(ctx, d)
	if err != nil {
		t.Fatalf("SetCellState: %v", err)
	}
	if got1.Since.IsZero() {
		t.Error("SetCellState: Since is zero")
	}
	other, err := s.SetCellState(ctx, directory.CellState{Cell: "ap-south", State: directory.CellStateDraining, DrainBatch: 1, DrainInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Changing the rate of a running drain keeps when it began.
	d.DrainBatch = 500
	got2, err := s.SetCellState(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !got2.Since.Equal(got1.Since) || got2.DrainBatch != 500 {
		t.Errorf("re-draining: got %+v, want Since %v kept and batch 500", got2, got1.Since)
	}
	all, err := s.CellStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []directory.CellState{other, got2}; !slices.EqualFunc(all, want, sameCellState) {
		t.Errorf("CellStates = %+v, want %+v", all, want)
	}
	if ok, err := s.ClearCellState(ctx, "eu-west"); err != nil || !ok {
		t.Errorf("ClearCellState(eu-west) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.ClearCellState(ctx, "eu-west"); err != nil || ok {
		t.Errorf("second ClearCellState(eu-west) = %v, %v; want false, nil", ok, err)
	}
	if all, _ := s.CellStates(ctx); !slices.EqualFunc(all, []directory.CellState{other}, sameCellState) {
		t.Errorf("after clearing eu-west: CellStates = %+v, want %+v", all, []directory.CellState{other})
	}
}

func sameCellState(a, b directory.CellState) bool {
	return a.Cell == b.Cell && a.State == b.State && a.DrainBatch == b.DrainBatch && a.DrainInterval == b.DrainInterval &&
		a.Reason == b.Reason && a.By == b.By && a.Since.Equal(b.Since)
}

func testInvalidCellStates(t *testing.T, s Store) {
	ok := directory.CellState{Cell: "c1", State: directory.CellStateDraining, DrainBatch: 10, DrainInterval: time.Second}
	with := func(f func(*directory.CellState)) directory.CellState { c := ok; f(&c); return c }
	tests := []struct {
		name string
		s    directory.CellState
	}{
		{"no cell", with(func(c *directory.CellState) { c.Cell = "" })},
		{"unknown state", with(func(c *directory.CellState) { c.State = "paused" })},
		{"active is cells.yaml's business", with(func(c *directory.CellState) { c.State = "active" })},
		{"zero batch", with(func(c *directory.CellState) { c.DrainBatch = 0 })},
		{"negative batch", with(func(c *directory.CellState) { c.DrainBatch = -5 })},
		{"huge batch", with(func(c *directory.CellState) { c.DrainBatch = directory.MaxDrainBatch + 1 })},
		{"interval too short", with(func(c *directory.CellState) { c.DrainInterval = time.Millisecond })},
		{"interval too long", with(func(c *directory.CellState) { c.DrainInterval = time.Hour })},
		{"fractional milliseconds", with(func(c *directory.CellState) { c.DrainInterval = 15500 * time.Microsecond })},
		{"reason too long", with(func(c *directory.CellState) { c.Reason = strings.Repeat("r", directory.MaxNoteLength+1) })},
	}
	for _, tt := range tests {
		if _, err := s.SetCellState(t.Context(), tt.s); apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("%s: SetCellState(%+v) = %v, want code %s", tt.name, tt.s, err, apierr.BadRequest)
		}
	}
	if all, err := s.CellStates(t.Context()); err != nil || len(all) != 0 {
		t.Errorf("after rejected states: CellStates = %+v, %v; want none", all, err)
	}
}
