package crdb

import "context"

// ApplyWith exposes Apply's sequence with the database abstracted, so its
// order is tested without CockroachDB.
func ApplyWith(ctx context.Context, o *Overlay, exec func(context.Context, string) error, migrate func(context.Context) error) error {
	return o.apply(ctx, exec, migrate)
}
