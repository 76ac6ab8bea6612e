package features

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus metrics. The counters always exist so
// the hot path needs no nil checks; they are registered only when a
// Registerer is configured.
type metrics struct {
	hit, miss prometheus.Counter
	dropped   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, m *Memory) (*metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sightline_features_lookups_total",
		Help: "User profile lookups, by result: hit for a known user, miss for an unknown one.",
	}, []string{"result"})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sightline_features_apply_dropped_total",
		Help: "Activity updates not recorded because the item id table was full (Config.MaxSymbols).",
	})
	met := &metrics{
		hit:     lookups.WithLabelValues("hit"),
		miss:    lookups.WithLabelValues("miss"),
		dropped: dropped,
	}
	if reg == nil {
		return met, nil
	}
	users := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_features_users",
		Help: "User profiles in the feature store.",
	}, func() float64 { return float64(m.userCount()) })
	items := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sightline_features_items",
		Help: "Items in the feature store's catalog.",
	}, func() float64 { return float64(m.itemCount()) })
	for _, c := range []prometheus.Collector{users, items, lookups, dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register features metrics: %w", err)
		}
	}
	return met, nil
}
