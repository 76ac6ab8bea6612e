package learn

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the event path's counters, shared by its consumers.
type metrics struct {
	events *prometheus.CounterVec // by outcome
	joins  *prometheus.CounterVec // by source

	// The counters of each label value, looked up once: the model
	// updater counts every event.
	learned, duplicate, unjoined, ignored prometheus.Counter
	joinDecision, joinRebuilt             prometheus.Counter
}

// cache looks the counters of every label value up.
func (m *metrics) cache() *metrics {
	m.learned = m.events.WithLabelValues(outcomeLearned)
	m.duplicate = m.events.WithLabelValues(outcomeDuplicate)
	m.unjoined = m.events.WithLabelValues(outcomeUnjoined)
	m.ignored = m.events.WithLabelValues(outcomeIgnored)
	m.joinDecision = m.joins.WithLabelValues("decision")
	m.joinRebuilt = m.joins.WithLabelValues("rebuilt")
	return m
}

// Event outcomes of the model updater, the values of the outcome label.
const (
	outcomeLearned   = "learned"
	outcomeDuplicate = "duplicate"
	outcomeUnjoined  = "unjoined"
	outcomeIgnored   = "ignored"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_learn_events_total",
			Help: "Events the model updater handled, by outcome: learned, duplicate (event id seen within the dedupe window), unjoined (item unknown), ignored (not a training event).",
		}, []string{"outcome"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_learn_joins_total",
			Help: "Training events by where their model context came from: decision (joined to the decision that showed the item) or rebuilt (from current features: organic events, or a decision no longer kept).",
		}, []string{"source"}),
	}
	for _, o := range []string{outcomeLearned, outcomeDuplicate, outcomeUnjoined, outcomeIgnored} {
		m.events.WithLabelValues(o)
	}
	m.joins.WithLabelValues("decision")
	m.joins.WithLabelValues("rebuilt")
	if reg == nil {
		return m.cache(), nil
	}
	// A trainer builds an updater each time it becomes active: the
	// counters of the first one go on counting.
	register := func(c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
		err := reg.Register(c)
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if prev, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return prev, nil
			}
		}
		return c, err
	}
	var err error
	if m.events, err = register(m.events); err != nil {
		return nil, err
	}
	if m.joins, err = register(m.joins); err != nil {
		return nil, err
	}
	return m.cache(), nil
}
