package catalog

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/livecell/livecell/cell/catalogapi"
)

// devCatalog is the catalog `livecell dev` starts with, so a purchase can be
// tried (livecell probe --purchase) on a fresh world.
//
//go:embed devcatalog.json
var devCatalog []byte

// DevCatalog returns the development catalog.
func DevCatalog() (catalogapi.Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(devCatalog))
	dec.DisallowUnknownFields()
	var c catalogapi.Catalog
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("catalog.DevCatalog: %w", err)
	}
	return c, nil
}

// Seed writes c into an empty catalog: items that are not bundles first,
// then bundles (their contents must exist), then offers, each validated as
// an admin write is. A catalog that already has a version is left alone.
func (s *Service) Seed(ctx context.Context, c catalogapi.Catalog) error {
	v, err := s.store.Version(ctx)
	if err != nil {
		return fmt.Errorf("catalog.Seed: %w", err)
	}
	if v > 0 {
		return nil
	}
	for _, bundles := range []bool{false, true} {
		for _, it := range c.Items {
			if (it.Kind == catalogapi.KindBundle) != bundles {
				continue
			}
			if _, err := s.PutItem(ctx, it); err != nil {
				return fmt.Errorf("catalog.Seed: item %s: %w", it.ID, err)
			}
		}
	}
	for _, o := range c.Offers {
		if _, err := s.PutOffer(ctx, o); err != nil {
			return fmt.Errorf("catalog.Seed: offer %s: %w", o.ID, err)
		}
	}
	return nil
}
