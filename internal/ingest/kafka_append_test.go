package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaAppendBoundedWhenUnacknowledged: brokers that take produce
// requests and never answer them (the idempotent producer cannot fail a
// record it sent, so it waits for ever) do not hold Append past its ctx
// or KafkaConfig.ProduceTimeout: it returns ErrNotAcknowledged, with the
// context's error, and reports nothing as appended. A retry of the same
// events is bounded the same way while the first records are unsettled.
func TestKafkaAppendBoundedWhenUnacknowledged(t *testing.T) {
	tests := []struct {
		name           string
		bound          time.Duration // when Append should return
		produceTimeout time.Duration
		ctx            func() (context.Context, context.CancelFunc)
	}{
		{
			name:           "ctx deadline",
			bound:          300 * time.Millisecond,
			produceTimeout: time.Hour,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
		},
		{
			name:           "produce timeout", // franz-go's least record timeout is 1s
			bound:          time.Second,
			produceTimeout: time.Second,
			ctx:            func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newKafkaCluster(t)
			k := openTestKafka(t, c, KafkaConfig{Partitions: 1, ProduceTimeout: tt.produceTimeout})
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return nil, nil, true // read, never answered
			})
			bound := tt.bound
			evs := testEvents("unacked", 3)
			for _, attempt := range []string{"first", "retry"} {
				ctx, cancel := tt.ctx()
				start := time.Now()
				type result struct {
					res AppendResult
					err error
				}
				done := make(chan result, 1)
				go func() {
					res, err := k.Append(ctx, evs)
					done <- result{res, err}
				}()
				var got result
				select {
				case got = <-done:
				case <-time.After(bound + 10*time.Second):
					t.Fatalf("%s Append with unanswered produce requests did not return within %v of its %v bound", attempt, 10*time.Second, bound)
				}
				cancel()
				if elapsed := time.Since(start); elapsed < bound || elapsed > bound+3*time.Second {
					t.Errorf("%s Append returned after %v, want about %v", attempt, elapsed, bound)
				}
				if !errors.Is(got.err, ErrNotAcknowledged) || !errors.Is(got.err, context.DeadlineExceeded) {
					t.Errorf("%s Append error = %v, want ErrNotAcknowledged and context.DeadlineExceeded", attempt, got.err)
				}
				if got.res != (AppendResult{}) {
					t.Errorf("%s Append result = %+v, want zero (nothing reported as accepted)", attempt, got.res)
				}
			}
		})
	}
}
