package evaluate

import (
	"context"
	"sync"
)

// pipeBatch is the number of rows handed from the reading goroutine to the
// evaluating one at a time.
const pipeBatch = 256

// pipe runs walk (a Source method) on a goroutine of its own and calls
// consume with each row it yields, on the caller's goroutine, so that
// reading (Parquet decoding) and evaluating use both cores. Rows cross in
// batches of shallow copies (the Source contract keeps a copy valid), at
// most a few batches ahead. pipe returns when both sides are done: the
// first error of consume, else walk's.
func pipe[T any](ctx context.Context, walk func(context.Context, func(*T) error) error, consume func(*T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan []T, 4)
	free := make(chan []T, 6)
	var (
		wg   sync.WaitGroup
		werr error
	)
	wg.Go(func() {
		defer close(full)
		buf := make([]T, 0, pipeBatch)
		send := func() error {
			select {
			case full <- buf:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case buf = <-free:
				buf = buf[:0]
			default:
				buf = make([]T, 0, pipeBatch)
			}
			return nil
		}
		werr = walk(ctx, func(x *T) error {
			buf = append(buf, *x)
			if len(buf) == pipeBatch {
				return send()
			}
			return nil
		})
		if werr == nil && len(buf) > 0 {
			werr = send()
		}
	})
	var cerr error
	for b := range full {
		for i := range b {
			if cerr != nil {
				break
			}
			cerr = consume(&b[i])
		}
		if cerr != nil {
			cancel() // the walk stops at its next batch
		}
		select {
		case free <- b:
		default:
		}
	}
	wg.Wait()
	if cerr != nil {
		return cerr
	}
	return werr
}
