// Package directorytest is the contract every player-home directory must
// meet, run against each implementation (in memory, PostgreSQL) so that
// `livecell dev` and production behave alike.
package directorytest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

// Store is the directory as its users see it.
type Store interface {
	Home(ctx context.Context, playerID string) (string, error)
	SetHome(ctx context.Context, playerID, cellID string) error
	CountByCell(ctx context.Context) (map[string]int, error)
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
