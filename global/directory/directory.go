// Package directory is the global player → home-cell directory and the
// control plane's other global state.
//
// Every player has one home cell, where their data lives and their sessions
// land. The global router reads this mapping (and caches it) to send a
// client to its cell; the control plane writes it when it places a new
// player or rehomes one. Reads vastly outnumber writes, which is exactly the
// trade a CockroachDB GLOBAL table makes: in production player_homes is
// LOCALITY GLOBAL, so every region reads it locally and writes pay the
// cross-region cost. Locally and in CI the same table lives in PostgreSQL,
// and Memory serves `livecell dev` and tests.
//
// Next to the homes live the mapping's exceptions and history, all small and
// GLOBAL too: the override table (a player pinned to a cell or quarantined),
// the redirect markers of rehomed players (Moves, read by the cells they
// left) and the cell states an operator set at run time (a drain), which
// override cells.yaml's.
//
// Both implementations answer Home with apierr.UnknownPlayer for a player
// the directory has never seen, so the router can tell "place this player"
// from "the directory is down" (apierr.Unavailable).
package directory

import (
	"unicode/utf8"

	"github.com/livecell/livecell/internal/apierr"
)

// MaxIDLength bounds player and cell ids. Real ids are UUIDs and short cell
// names; the bound keeps junk out of a table every region replicates.
const MaxIDLength = 256

// errUnknownPlayer is returned by Home for a player without a home.
func errUnknownPlayer() error { return apierr.New(apierr.UnknownPlayer, "unknown player") }

// validID rejects what PostgreSQL TEXT cannot store (NUL, invalid UTF-8), so
// Memory and Postgres accept exactly the same ids.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) {
		return false
	}
	for i := range len(id) {
		if id[i] == 0 {
			return false
		}
	}
	return true
}

func validate(op, playerID, cellID string) error {
	if !validID(playerID) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid player id", nil)
	}
	if !validID(cellID) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid cell id", nil)
	}
	return nil
}
