package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

// maxAdminBody bounds an item or offer: a bundle of MaxBundleItems entries
// with full display text fits many times over.
const maxAdminBody = 64 << 10

// Handler returns the catalog's HTTP API (paths in catalogapi).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+catalogapi.PathCatalog, s.handleCatalog)
	mux.HandleFunc("PUT "+catalogapi.PathAdminItems+"/{id}", s.handlePutItem)
	mux.HandleFunc("PUT "+catalogapi.PathAdminOffers+"/{id}", s.handlePutOffer)
	mux.HandleFunc(catalogapi.PathCatalog, httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc(catalogapi.PathAdminItems+"/{id}", httpapi.MethodNotAllowed(http.MethodPut))
	mux.HandleFunc(catalogapi.PathAdminOffers+"/{id}", httpapi.MethodNotAllowed(http.MethodPut))
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

// handleCatalog serves the catalog with its version as a strong ETag. A
// client that sends If-None-Match with the current ETag gets 304 and no
// body; clients may cache the body but must revalidate (no-cache).
func (s *Service) handleCatalog(w http.ResponseWriter, r *http.Request) {
	c, err := s.Catalog(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	etag := catalogapi.ETag(c.Version)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if matchesETag(r.Header.Get("If-None-Match"), etag) {
		s.m.unchanged()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(c)
}

// matchesETag implements If-None-Match's weak comparison over a list.
func matchesETag(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// authorizeAdmin admits only a server credential with ScopeAdmin.
func (s *Service) authorizeAdmin(r *http.Request) error {
	tok, err := httpapi.BearerToken(r)
	if err == nil {
		_, err = s.admin.VerifyServer(tok, catalogapi.ScopeAdmin)
	}
	if err != nil {
		s.m.refused(err)
		return err
	}
	return nil
}

func (s *Service) handlePutItem(w http.ResponseWriter, r *http.Request) {
	put(s, w, r, func(it *catalogapi.Item) *string { return &it.ID }, s.PutItem)
}

func (s *Service) handlePutOffer(w http.ResponseWriter, r *http.Request) {
	put(s, w, r, func(o *catalogapi.Offer) *string { return &o.ID }, s.PutOffer)
}

// put is the shape of both admin writes: authorize, decode, take the id from
// the path (a body id, if given, must agree), store, answer the stored value
// with the catalog's new ETag.
func put[T any](s *Service, w http.ResponseWriter, r *http.Request, id func(*T) *string, store func(context.Context, T) (int64, error)) {
	var v T
	err := func() error {
		if err := s.authorizeAdmin(r); err != nil {
			return err
		}
		if err := httpapi.Decode(w, r, &v, maxAdminBody); err != nil {
			return err
		}
		p := id(&v)
		switch {
		case *p == "":
			*p = r.PathValue("id")
		case *p != r.PathValue("id"):
			return apierr.New(apierr.BadRequest, "body id %q differs from the path's %q", *p, r.PathValue("id"))
		}
		version, err := store(r.Context(), v)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", catalogapi.ETag(version))
		return nil
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
}

// Ops returns the catalog's gateway opcode handlers.
func (s *Service) Ops() protocol.Handlers {
	return protocol.Handlers{protocol.OpCatalogGet: s.opGet}
}

// opGet answers catalogapi.GetRequest: the catalog, or NotModified when the
// client's version is current. A catalog larger than the session's frames is
// payload_too_large: such a game reads GET /v1/catalog instead.
func (s *Service) opGet(ctx context.Context, _ protocol.Caller, payload []byte) ([]byte, error) {
	var req catalogapi.GetRequest
	if err := protocol.DecodeJSON(payload, &req); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	var out any = c
	if req.IfVersion != 0 && req.IfVersion == c.Version {
		s.m.unchanged()
		out = catalogapi.NotModified{Version: c.Version, NotModified: true}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, apierr.Wrap("catalog.opGet", apierr.Internal, "", err)
	}
	if len(b)+protocol.HeaderSize > protocol.DefaultMaxFrame {
		return nil, apierr.New(apierr.PayloadTooLarge, "the catalog (%d bytes) is larger than a frame; GET %s", len(b), catalogapi.PathCatalog)
	}
	return b, nil
}
