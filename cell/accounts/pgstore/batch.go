package pgstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A batcher sends the calls that arrive while earlier ones are still at the
// database together, as one statement: at most maxBatchStatements
// statements of a batcher are in flight, and whatever queued meanwhile goes
// out in the next one, up to maxBatch calls. Nothing waits on purpose: a
// call that finds a statement slot free is sent at once, alone. Under load
// this trades the per-statement costs (a round trip, waking a backend, the
// execution overhead, a commit and its WAL flush) for one per batch; on the
// benchmark machine an 8-row sign-in statement cost a third of eight 1-row
// ones in machine CPU per sign-in (docs/benchmarks.md, issue 3).
//
// A batch is one statement, so one failing row (a unique violation) fails
// it all and writes nothing; its calls then run one by one, so the error
// reaches only the caller at fault.
const (
	maxBatch = 32
	// maxBatchStatements: two keep the database busy while the next batch
	// fills, leave the rest of the pool to the other work of the cell, and
	// batch deeper than more slots would: on the benchmark machine 1, 2 and
	// 4 slots gave about 7,000, 7,050 and 6,500 sign-ins/s, 4 at 1.5 times
	// the database CPU per sign-in of 2 (docs/benchmarks.md).
	maxBatchStatements = 2
	// batchTimeout bounds one batch statement. It does not run under any
	// caller's context (a batch serves many), so callers that give up stop
	// waiting for it but do not stop it.
	batchTimeout = 30 * time.Second
)

// batchCall is one call waiting for its batch.
type batchCall[In, Out any] struct {
	in  In
	out Out
	err error
	// abandoned: the caller stopped waiting (its context ended); a batch
	// not yet sent leaves it out.
	abandoned atomic.Bool
	done      chan struct{} // closed when out and err are set
}

// batcher queues calls for the statements that send them.
type batcher[In, Out any] struct {
	// many runs calls as one statement; on success it sets every call's
	// result, on error none. one runs a call alone and sets its result.
	many func(context.Context, []*batchCall[In, Out]) error
	one  func(context.Context, *batchCall[In, Out])

	mu       sync.Mutex
	queue    []*batchCall[In, Out]
	flushers int // goroutines sending batches; each has one statement in flight
}

func newBatcher[In, Out any](many func(context.Context, []*batchCall[In, Out]) error, one func(context.Context, *batchCall[In, Out])) *batcher[In, Out] {
	return &batcher[In, Out]{many: many, one: one}
}

// do runs in with the next batch and returns its result. When ctx ends
// first, do returns at once with ctx's error wrapped by op; a batch already
// sent may still apply in, as a statement whose answer was lost would.
func (b *batcher[In, Out]) do(ctx context.Context, op string, in In) (Out, error) {
	var zero Out
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	c := &batchCall[In, Out]{in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	start := b.flushers < maxBatchStatements
	if start {
		b.flushers++
	}
	b.mu.Unlock()
	if start {
		go b.flush()
	}
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		c.abandoned.Store(true)
		return zero, fmt.Errorf("%s: %w", op, ctx.Err())
	}
}

// take removes and returns up to maxBatch queued calls whose callers still
// wait; ok is false (and the caller must stop flushing) when the queue is
// empty.
func (b *batcher[In, Out]) take() (batch []*batchCall[In, Out], ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > 0 && len(batch) < maxBatch {
		c := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		if c.abandoned.Load() {
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	if len(batch) == 0 {
		b.flushers--
		b.queue = nil // drop the drained backing array
		return nil, false
	}
	return batch, true
}

// flush sends queued calls until the queue is empty.
func (b *batcher[In, Out]) flush() {
	for {
		batch, ok := b.take()
		if !ok {
			return
		}
		b.run(batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// run runs batch and sets every call's result.
func (b *batcher[In, Out]) run(batch []*batchCall[In, Out]) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		b.one(ctx, batch[0])
		return
	}
	if err := b.many(ctx, batch); err != nil {
		// Nothing of the failed statement was written: each call runs
		// again alone, so only the one at fault gets its error.
		for _, c := range batch {
			b.one(ctx, c)
		}
	}
}

// batchSQL caches statement texts per dialect and row count, so that each
// text is built once and pgx's statement cache sees the same text every
// time.
type batchSQL struct {
	build func(rows int, postgres bool) string
	texts [2][maxBatch + 1]atomic.Pointer[string]
}

// get is the statement for rows rows, for PostgreSQL or CockroachDB.
func (c *batchSQL) get(rows int, postgres bool) string {
	d := 0
	if postgres {
		d = 1
	}
	if q := c.texts[d][rows].Load(); q != nil {
		return *q
	}
	q := c.build(rows, postgres)
	c.texts[d][rows].Store(&q)
	return q
}

// valuesRows is the body of a VALUES list of rows rows: each row is its
// 1-based number, then one placeholder per column cast to its type in
// types, numbered from $1 across the rows.
func valuesRows(rows int, types []string) string {
	var b []byte
	for i := range rows {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "(%d", i+1)
		for j, t := range types {
			b = fmt.Appendf(b, ", $%d::%s", i*len(types)+j+1, t)
		}
		b = append(b, ')')
	}
	return string(b)
}
