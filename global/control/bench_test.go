package control_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/token"
)

// BenchmarkRouting measures GET /v1/routing with a full override table
// (directory.MaxOverrides entries), the call every router and cell process
// makes every second or two: a full answer, and the 304 an unchanged table
// costs a poller that sends its ETag back.
func BenchmarkRouting(b *testing.B) {
	dir := directory.NewMemory()
	ctx := context.Background()
	for i := range directory.MaxOverrides {
		o := directory.Override{PlayerID: uuid.NewString(), Kind: directory.Quarantine}
		if i%2 == 0 {
			o = directory.Override{PlayerID: o.PlayerID, Kind: directory.Pin, Cell: []string{"eu-west", "us-east", "ap-south"}[i%3]}
		}
		if _, err := dir.SetOverride(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	ks, _ := token.GenerateKeySet()
	s, err := control.New(control.Config{}, control.Deps{Directory: dir, Health: threeCells(), Verifier: token.NewVerifier(ks, nil)})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	first := httptest.NewRecorder()
	h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, control.PathRouting, nil))
	etag := first.Header().Get("ETag")
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, control.PathRouting, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("got %d", rec.Code)
			}
		}
		b.ReportMetric(float64(first.Body.Len()), "body-bytes")
	})
	b.Run("not-modified", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, control.PathRouting, nil)
			req.Header.Set("If-None-Match", etag)
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotModified {
				b.Fatalf("got %d", rec.Code)
			}
		}
	})
	// What a router does with a full answer: decode it and build its map.
	b.Run("client-decode", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		b.ReportAllocs()
		for b.Loop() {
			c := &control.Client{BaseURL: srv.URL}
			rt, err := c.Routing(ctx)
			if err != nil || len(rt.Overrides) != directory.MaxOverrides {
				b.Fatalf("got %d overrides, %v", len(rt.Overrides), err)
			}
		}
	})
}
