package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/quality"
)

// Consumer names: a fixed set, used as metric labels.
const (
	consumerModel    = "model"
	consumerFeatures = "features"
	consumerIndex    = "index"
	consumerStats    = "engagement"
)

// modelUpdater trains the model online from impressions (label 0) and
// clicks (label 1), joined to the decision that showed the item by
// request_id. It owns the model's write side; snapshots take its lock so the
// saved state matches the saved positions exactly.
type modelUpdater struct {
	n *Node

	mu      sync.Mutex
	applied offsets // next offset to apply per partition; state includes everything before
	shown   pendingSet
	joins   atomic.Uint64
	misses  atomic.Uint64
}

// HandlePartition applies the records of partition p it has not applied
// yet. A feature-store error stops the batch there; the bus delivers it
// again and the records already applied are skipped.
func (u *modelUpdater) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	next := u.applied[p]
	defer func() { u.applied[p] = next }()
	for i := range recs {
		r := &recs[i]
		if r.Offset < next {
			continue // redelivered: already applied
		}
		if err := u.apply(ctx, r); err != nil {
			return err
		}
		next = r.Offset + 1
	}
	return nil
}

func (u *modelUpdater) apply(ctx context.Context, r *ingest.Record) error {
	ev := &r.Event
	var label model.Label
	key := ev.RequestID + "\x00" + ev.ItemID
	switch ev.Type {
	case event.Impression:
		label = model.Negative
		if ev.RequestID != "" {
			u.shown.add(key)
		}
	case event.Click:
		label = model.Positive
		if ev.RequestID != "" && u.shown.take(key) {
			label = model.Flip
		}
	default:
		return nil
	}
	_, span := u.n.startEventSpan(ctx, "ModelUpdate", r)
	defer span.End()
	x, it, ok, err := u.context(ctx, ev)
	if err != nil {
		span.RecordError(err)
		return fmt.Errorf("model update: %w", err)
	}
	if !ok {
		span.SetAttributes(attribute.Bool("sightline.join.skipped", true))
		return nil
	}
	u.n.model.Learn(&x, it, label)
	return nil
}

// context returns what the model saw when it showed the item: from the
// decision ring when the decision is recent, else rebuilt from the current
// features (after a restart, or for organic events). It fails only when
// the feature store does.
func (u *modelUpdater) context(ctx context.Context, ev *event.Event) (model.Context, event.Item, bool, error) {
	if ev.RequestID != "" {
		if j, ok := u.n.engine.Joined(ev.RequestID, ev.ItemID); ok {
			u.joins.Add(1)
			return j.Context, j.Item, true, nil
		}
	}
	u.misses.Add(1)
	it, ok, err := u.n.store.Item(ctx, ev.ItemID)
	if err != nil || !ok {
		return model.Context{}, event.Item{}, false, err
	}
	user, _, err := u.n.store.User(ctx, ev.UserID)
	if err != nil {
		return model.Context{}, event.Item{}, false, err
	}
	act, err := u.n.store.Activity(ctx, ev.UserID)
	if err != nil {
		return model.Context{}, event.Item{}, false, err
	}
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	return model.Context{User: user, Channel: ev.Channel, Hour: ts.Hour(), RecentCategories: act.RecentCategories}, it, true, nil
}

// pendingSet remembers recent (request, item) impressions in two
// generations, so memory stays bounded and a click within the last
// generation finds its impression.
type pendingSet struct {
	cur, prev map[string]struct{}
	limit     int
}

func (p *pendingSet) add(k string) {
	if p.cur == nil {
		p.cur, p.limit = make(map[string]struct{}), 500_000
	}
	if len(p.cur) >= p.limit {
		p.prev, p.cur = p.cur, make(map[string]struct{}, p.limit)
	}
	p.cur[k] = struct{}{}
}

func (p *pendingSet) take(k string) bool {
	if _, ok := p.cur[k]; ok {
		delete(p.cur, k)
		return true
	}
	if _, ok := p.prev[k]; ok {
		delete(p.prev, k)
		return true
	}
	return false
}

// featureUpdater records events in users' recent activity.
type featureUpdater struct {
	store   featureStore
	mu      sync.Mutex
	applied offsets // next offset to apply per partition
	evs     []*event.Event
}

// HandlePartition applies the records of partition p it has not applied
// yet, as one batch; on error the bus delivers the batch again.
func (f *featureUpdater) HandlePartition(ctx context.Context, p int32, recs []ingest.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := f.evs[:0]
	for i := range recs {
		if recs[i].Offset >= f.applied[p] {
			evs = append(evs, &recs[i].Event)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	err := f.store.Apply(ctx, evs)
	clear(evs) // recs are reused after Handle: keep no pointer into them
	f.evs = evs[:0]
	if err != nil {
		return fmt.Errorf("feature update: %w", err)
	}
	f.applied[p] = recs[len(recs)-1].Offset + 1
	return nil
}

// indexUpdater feeds the engine's candidate index (popularity, co-visitation).
type indexUpdater struct{ n *Node }

func (x indexUpdater) HandlePartition(ctx context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		r := &recs[i]
		_, span := x.n.startEventSpan(ctx, "events process", r)
		x.n.engine.Observe(ctx, &r.Event)
		span.End()
	}
	return nil
}

// engagementTracker counts impressions and clicks per variant for live CTR.
type engagementTracker struct {
	live       *quality.Live
	engine     *engine.Engine
	engagement *quality.Engagement
}

func (t engagementTracker) HandlePartition(_ context.Context, _ int32, recs []ingest.Record) error {
	for i := range recs {
		ev := &recs[i].Event
		v := t.engine.Variant(ev.UserID)
		t.live.ObserveEngagement(v, ev.Type == event.Impression, ev.Type == event.Click)
		t.engagement.ObserveEvent(v, ev.Channel, ev.Type)
	}
	return nil
}

// startEventSpan starts a consumer span for one record, as a new root
// linked to the producer's trace context carried in the record and to the
// trace of the recommendation the event answers, so a click can be followed
// back to the request that showed the item. To keep the event path cheap,
// it records a span only when one of those traces is kept: the producer was
// sampled, or the recommendation was sampled or fell back (tail retention
// keeps fallbacks). Otherwise it returns a non-recording span.
func (n *Node) startEventSpan(ctx context.Context, name string, r *ingest.Record, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var links []trace.Link
	keep := false
	if r.Event.TraceParent != "" {
		carrier := propagation.MapCarrier{"traceparent": r.Event.TraceParent, "tracestate": r.Event.TraceState}
		if sc := trace.SpanContextFromContext(n.prop.Extract(context.Background(), carrier)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{linkProducer}})
			keep = sc.IsSampled()
		}
	}
	if r.Event.RequestID != "" {
		if d, ok := n.engine.DecisionTrace(r.Event.RequestID); ok && d.TraceID.IsValid() && d.SpanID.IsValid() {
			// A head-sampled recommendation is followed by all its
			// events; one kept only by tail retention (a fallback) by
			// its clicks and conversions, so impressions, ten per
			// request, do not crowd the flight recorder.
			kept := d.Sampled || (d.Fallback != engine.ReasonNone && r.Event.Type != event.Impression)
			var flags trace.TraceFlags
			if kept {
				flags = trace.FlagsSampled
			}
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: d.TraceID, SpanID: d.SpanID, TraceFlags: flags})
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{linkRecommendation}})
			keep = keep || kept
		}
	}
	if !keep {
		return ctx, trace.SpanFromContext(context.Background())
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("messaging.system", "sightline"),
			attribute.String("messaging.operation.type", "process"),
			attribute.Int64("messaging.message.offset", int64(r.Offset)),
			attribute.String("sightline.request.id", r.Event.RequestID),
			attribute.String("sightline.event.type", r.Event.Type.String()),
		))
	return n.tracer.Start(ctx, name, opts...)
}

var (
	linkProducer       = attribute.String("sightline.link", "producer")
	linkRecommendation = attribute.String("sightline.link", "recommendation")
)
