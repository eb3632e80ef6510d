package memstore

import (
	"testing"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalog/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.Store { return New() })
}
