package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

const (
	// maxCheckoutBody bounds a CheckoutRequest: a few short fields.
	maxCheckoutBody = 4 << 10
	// maxWebhookBody bounds a Stripe event; real ones are a few KB.
	maxWebhookBody = 512 << 10
	// listLimit is how many purchases a player's list shows.
	listLimit = 100
)

// Handler returns the store's HTTP API (paths in storeapi).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+storeapi.PathCheckout, s.handleCheckout)
	mux.HandleFunc("GET "+storeapi.PathPurchases, s.handlePurchases)
	mux.HandleFunc("POST "+storeapi.PathWebhook, s.handleWebhook)
	mux.HandleFunc("POST "+storeapi.PathTestModePay+"/{purchase}", s.handleTestModePay)
	mux.HandleFunc("GET "+storeapi.PathReturn+"/{result}", s.handleReturn)
	mux.HandleFunc(storeapi.PathCheckout, httpapi.MethodNotAllowed(http.MethodPost))
	mux.HandleFunc(storeapi.PathPurchases, httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc(storeapi.PathWebhook, httpapi.MethodNotAllowed(http.MethodPost))
	mux.HandleFunc(storeapi.PathTestModePay+"/{purchase}", httpapi.MethodNotAllowed(http.MethodPost))
	mux.HandleFunc(storeapi.PathReturn+"/{result}", httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

// caller authenticates r's player token for this cell and returns the
// player and this cell, their home.
func (s *Service) caller(r *http.Request) (playerID, homeCell string, err error) {
	playerID, err = httpapi.CellPlayer(r, s.verify, s.cfg.CellID)
	return playerID, s.cfg.CellID, err
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	resp, err := func() (storeapi.CheckoutResponse, error) {
		player, home, err := s.caller(r)
		if err != nil {
			s.m.checkout(err)
			return storeapi.CheckoutResponse{}, err
		}
		var req storeapi.CheckoutRequest
		if err := httpapi.Decode(w, r, &req, maxCheckoutBody); err != nil {
			s.m.checkout(err)
			return storeapi.CheckoutResponse{}, err
		}
		return s.Checkout(r.Context(), player, home, req)
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, resp)
}

func (s *Service) handlePurchases(w http.ResponseWriter, r *http.Request) {
	out, err := func() (storeapi.Purchases, error) {
		player, _, err := s.caller(r)
		if err != nil {
			return storeapi.Purchases{}, err
		}
		return s.Purchases(r.Context(), player)
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// Purchases lists a player's purchases, newest first.
func (s *Service) Purchases(ctx context.Context, playerID string) (storeapi.Purchases, error) {
	ps, err := s.store.Purchases(ctx, playerID, listLimit)
	if err != nil {
		return storeapi.Purchases{}, apierr.Wrap("store.Purchases", apierr.Unavailable, "", err)
	}
	out := storeapi.Purchases{Purchases: make([]storeapi.Purchase, len(ps))}
	for i, p := range ps {
		out.Purchases[i] = p.Purchase
	}
	return out, nil
}

// handleWebhook answers Stripe: 200 only after the event's effect (or its
// being a duplicate) is committed; anything else makes Stripe retry.
func (s *Service) handleWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = apierr.New(apierr.PayloadTooLarge, "webhook body exceeds %d bytes", maxWebhookBody)
		} else {
			err = apierr.Wrap("store.Webhook", apierr.BadRequest, "could not read the body", err)
		}
		s.m.webhook(refusedMalformed)
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	outcome, err := s.Webhook(r.Context(), body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, storeapi.WebhookAnswer{Received: true, Outcome: outcome})
}

// handleReturn is the default page Stripe sends the player back to.
func (s *Service) handleReturn(w http.ResponseWriter, r *http.Request) {
	ret := storeapi.Return{Result: r.PathValue("result"), PurchaseID: r.URL.Query().Get("purchase")}
	switch ret.Result {
	case "success":
		ret.Message = "Payment received. Return to the game: your items arrive in a moment."
	case "cancel":
		ret.Message = "Payment cancelled. Nothing was charged; return to the game."
	default:
		httpapi.WriteError(w, r, s.log, apierr.New(apierr.NotFound, "unknown return result %q", ret.Result))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, ret)
}

// Ops returns the store's gateway opcode handlers.
func (s *Service) Ops() protocol.Handlers {
	return protocol.Handlers{
		protocol.OpStoreCheckout:  s.opCheckout,
		protocol.OpStorePurchases: s.opPurchases,
	}
}

// opCheckout trusts the gateway's authentication.
func (s *Service) opCheckout(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
	var req storeapi.CheckoutRequest
	if err := protocol.DecodeJSON(payload, &req); err != nil {
		s.m.checkout(err)
		return nil, err
	}
	if c.PlayerID == "" {
		return nil, apierr.New(apierr.NotAuthenticated, "request has no authenticated player")
	}
	resp, err := s.Checkout(ctx, c.PlayerID, s.cfg.CellID, req)
	if err != nil {
		return nil, err
	}
	return marshal(resp)
}

func (s *Service) opPurchases(ctx context.Context, c protocol.Caller, payload []byte) ([]byte, error) {
	if err := protocol.DecodeJSON(payload, &struct{}{}); err != nil {
		return nil, err
	}
	if c.PlayerID == "" {
		return nil, apierr.New(apierr.NotAuthenticated, "request has no authenticated player")
	}
	out, err := s.Purchases(ctx, c.PlayerID)
	if err != nil {
		return nil, err
	}
	return marshal(out)
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apierr.Wrap("store.marshal", apierr.Internal, "", err)
	}
	return b, nil
}
