package inventory

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

// maxEquipBody bounds an EquipRequest: two identifiers.
const maxEquipBody = 1 << 10

// Handler returns the inventory's HTTP API (paths in inventoryapi).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+inventoryapi.PathInventory, s.handleInventory)
	mux.HandleFunc("PUT "+inventoryapi.PathLoadout, s.handleEquip)
	mux.HandleFunc(inventoryapi.PathInventory, httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc(inventoryapi.PathLoadout, httpapi.MethodNotAllowed(http.MethodPut))
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

// caller authenticates r's player token for this cell and returns the
// player and this cell, their home.
func (s *Service) caller(r *http.Request) (playerID, homeCell string, err error) {
	playerID, err = httpapi.CellPlayer(r, s.verify, s.cfg.CellID)
	return playerID, s.cfg.CellID, err
}

func (s *Service) handleInventory(w http.ResponseWriter, r *http.Request) {
	inv, err := func() (inventoryapi.Inventory, error) {
		playerID, _, err := s.caller(r)
		if err != nil {
			return inventoryapi.Inventory{}, err
		}
		return s.Inventory(r.Context(), playerID)
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, inv)
}

func (s *Service) handleEquip(w http.ResponseWriter, r *http.Request) {
	inv, err := func() (inventoryapi.Inventory, error) {
		playerID, home, err := s.caller(r)
		if err != nil {
			return inventoryapi.Inventory{}, err
		}
		var req inventoryapi.EquipRequest
		if err := httpapi.Decode(w, r, &req, maxEquipBody); err != nil {
			return inventoryapi.Inventory{}, err
		}
		return s.Equip(r.Context(), playerID, home, req)
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, inv)
}

// Ops returns the inventory's gateway opcode handlers.
func (s *Service) Ops() protocol.Handlers {
	return protocol.Handlers{
		protocol.OpInventoryGet:   s.opGet,
		protocol.OpInventoryEquip: s.opEquip,
	}
}

func (s *Service) opGet(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
	if err := protocol.DecodeJSON(payload, &struct{}{}); err != nil {
		return nil, err
	}
	if c.PlayerID == "" {
		return nil, apierr.New(apierr.NotAuthenticated, "request has no authenticated player")
	}
	inv, err := s.Inventory(ctx, c.PlayerID)
	if err != nil {
		return nil, err
	}
	return marshal(inv)
}

// opEquip trusts the gateway's authentication. The session's home cell is
// the one whose gateway holds it: this cell, or its failover target, whose
// inventory serves the player while the home cell is down.
func (s *Service) opEquip(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
	var req inventoryapi.EquipRequest
	if err := protocol.DecodeJSON(payload, &req); err != nil {
		return nil, err
	}
	if c.PlayerID == "" {
		return nil, apierr.New(apierr.NotAuthenticated, "request has no authenticated player")
	}
	inv, err := s.Equip(ctx, c.PlayerID, s.cfg.CellID, req)
	if err != nil {
		return nil, err
	}
	return marshal(inv)
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apierr.Wrap("inventory.marshal", apierr.Internal, "", err)
	}
	return b, nil
}
