package evaluate

import (
	"context"
	"errors"
	"testing"
)

func TestPipe(t *testing.T) {
	walk := func(n int, failAt int) func(context.Context, func(*int) error) error {
		return func(_ context.Context, fn func(*int) error) error {
			for i := range n {
				if i == failAt {
					return errors.New("walk failed")
				}
				if err := fn(&i); err != nil {
					return err
				}
			}
			return nil
		}
	}
	t.Run("all rows in order", func(t *testing.T) {
		var got []int
		if err := pipe(context.Background(), walk(1000, -1), func(x *int) error { got = append(got, *x); return nil }); err != nil {
			t.Fatalf("pipe error = %v", err)
		}
		for i, x := range got {
			if x != i {
				t.Fatalf("pipe row %d = %d, want %d", i, x, i)
			}
		}
		if len(got) != 1000 {
			t.Errorf("pipe yielded %d rows, want 1000", len(got))
		}
	})
	t.Run("walk error", func(t *testing.T) {
		if err := pipe(context.Background(), walk(1000, 700), func(*int) error { return nil }); err == nil || err.Error() != "walk failed" {
			t.Errorf("pipe error = %v, want the walk's", err)
		}
	})
	t.Run("consume error stops the walk", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := pipe(context.Background(), walk(1_000_000, -1), func(*int) error {
			if n++; n == 10 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 10 {
			t.Errorf("pipe error = %v after %d rows, want stop after 10", err, n)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := pipe(ctx, walk(1_000_000, -1), func(*int) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("pipe on a canceled context error = %v, want context.Canceled", err)
		}
	})
}
