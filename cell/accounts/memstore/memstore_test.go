package memstore

import (
	"testing"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) accounts.Store { return New() })
}
