package ingest

// Kafka lag metrics and the franz-go logger.

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// activeConsumers names the consumers running in this process now: a
// consumer that stopped (a trainer that stepped down to standby) reports no
// lag, which would only grow.
func (k *Kafka) activeConsumers() []string {
	k.cmu.Lock()
	defer k.cmu.Unlock()
	names := make([]string, 0, len(k.consumers))
	for n, c := range k.consumers {
		if c.active {
			names = append(names, n)
		}
	}
	return names
}

func (k *Kafka) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{k.m.appended, k.m.duplicates, k.m.corrupt, k.m.handlerErrors, kafkaLagCollector{k}}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// kafkaLagCollector reports queue depth and lag of the consumers that ran
// in this process, under the embedded log's metric names.
type kafkaLagCollector struct{ k *Kafka }

func (c kafkaLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- lagSecondsDesc
}

func (c kafkaLagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.k.activeConsumers() {
		n, age := c.k.Lag(name)
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age.Seconds(), name)
	}
}

// kgoLogger forwards franz-go warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (g kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	g.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}
