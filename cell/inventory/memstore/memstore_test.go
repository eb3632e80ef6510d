package memstore

import (
	"testing"

	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventory/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) inventory.Store { return New() })
}
