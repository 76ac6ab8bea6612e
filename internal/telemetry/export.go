package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher queues kept spans for a [sdktrace.SpanExporter] with batch span
// processor semantics: a bounded queue that never blocks the caller (a full
// queue drops and counts), batches of at most batchSize spans, a flush at
// least every interval, and each export bounded by timeout.
type batcher struct {
	exp       sdktrace.SpanExporter
	q         chan sdktrace.ReadOnlySpan
	dropped   prometheus.Counter
	batchSize int
	interval  time.Duration
	timeout   time.Duration

	ctx    context.Context // canceled when Shutdown gives up
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// newBatcher starts the export goroutine; stop it with shutdown.
func newBatcher(exp sdktrace.SpanExporter, queue, batchSize int, interval, timeout time.Duration, dropped prometheus.Counter) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{
		exp:       exp,
		q:         make(chan sdktrace.ReadOnlySpan, queue),
		dropped:   dropped,
		batchSize: min(batchSize, queue),
		interval:  interval,
		timeout:   timeout,
		ctx:       ctx,
		cancel:    cancel,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go b.run()
	return b
}

// enqueue offers spans to the queue without blocking; spans that do not fit
// are dropped and counted. It is safe for concurrent use, also after
// shutdown (then everything is dropped).
func (b *batcher) enqueue(spans []sdktrace.ReadOnlySpan) {
	select {
	case <-b.stop:
		b.dropped.Add(float64(len(spans)))
		return
	default:
	}
	for i, s := range spans {
		select {
		case b.q <- s:
		default:
			b.dropped.Add(float64(len(spans) - i))
			return
		}
	}
}

func (b *batcher) run() {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, b.batchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		b.export(batch)
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case s := <-b.q:
			batch = append(batch, s)
			if len(batch) >= b.batchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-b.stop:
			for {
				select {
				case s := <-b.q:
					batch = append(batch, s)
					if len(batch) >= b.batchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

func (b *batcher) export(batch []sdktrace.ReadOnlySpan) {
	if b.ctx.Err() != nil {
		b.dropped.Add(float64(len(batch)))
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := b.exp.ExportSpans(ctx, batch); err != nil {
		b.dropped.Add(float64(len(batch)))
	}
}

// shutdown drains the queue, exports what it can before ctx expires, then
// shuts the exporter down. It is idempotent.
func (b *batcher) shutdown(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		close(b.stop)
		select {
		case <-b.done:
		case <-ctx.Done():
			b.cancel() // abort the export in progress and drop the rest
			<-b.done
			err = ctx.Err()
		}
		b.cancel()
		if e := b.exp.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	})
	return err
}
