package directory

import (
	"time"

	"github.com/livecell/livecell/internal/apierr"
)

// Move records that a player was rehomed: the redirect marker their old
// cell reads, so that it answers the player with "moved to To" instead of
// serving them on credentials that still name it.
type Move struct {
	Seq      int64 // increasing; readers page through moves by it
	PlayerID string
	From, To string
	At       time.Time
}

// MaxMovesPage bounds one Moves answer.
const MaxMovesPage = 1000

func validateMove(op, playerID, from, to string) error {
	if !validID(playerID) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid player id", nil)
	}
	if !validID(from) || !validID(to) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid cell id", nil)
	}
	return nil
}

func clampLimit(limit int) int {
	if limit <= 0 || limit > MaxMovesPage {
		return MaxMovesPage
	}
	return limit
}
