package memstore

import (
	"testing"

	"github.com/livecell/livecell/cell/store"
	"github.com/livecell/livecell/cell/store/storetest"
	"github.com/livecell/livecell/internal/events"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, events.Outbox) {
		s := New()
		return s, s.Outbox()
	})
}
