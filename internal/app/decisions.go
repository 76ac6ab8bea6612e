package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// decisionBuffer bounds the decision records an API node holds while the
// brokers acknowledge them: past it, records are dropped and counted, so a
// slow broker never slows serving.
const decisionBuffer = 20_000

// decisionStream is the Kafka topic of decision records: each API node
// publishes the training context of every decision it makes (the engine's
// versioned record, see engine.DecodeRecord and docs/decision-stream.md),
// keyed by request id; the active trainer reads them back to join the
// impressions and clicks that answer a decision to the context the model
// saw when it made it, whichever node served it.
type decisionStream struct {
	brokers []string
	topic   string
	node    []byte // this node's name, in the nodeHeader of what it publishes
	logger  *slog.Logger
	cl      *kgo.Client // the producer; nil on a trainer

	published, dropped, consumed, rejected prometheus.Counter
}

func newDecisionStream(ctx context.Context, cfg *Config, logger *slog.Logger, reg prometheus.Registerer, produce bool) (*decisionStream, error) {
	s := &decisionStream{
		brokers: cfg.KafkaBrokers, topic: cfg.KafkaDecisionsTopic, logger: logger, node: []byte(cfg.NodeName),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_decision_stream_published_total",
			Help: "Decision records the brokers acknowledged on the decision stream (API nodes).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_decision_stream_dropped_total",
			Help: "Decision records not published: the producer buffer was full or the brokers refused them (API nodes). The trainer learns their events from rebuilt contexts instead.",
		}),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_decision_stream_consumed_total",
			Help: "Decision records the active trainer read from the decision stream.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sightline_decision_stream_rejected_total",
			Help: "Decision records the active trainer read and could not use (an unknown version, a corrupt record): the events that answer them learn from rebuilt contexts.",
		}),
	}
	for _, c := range []prometheus.Collector{s.published, s.dropped, s.consumed, s.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if err := s.ensureTopic(ctx, cfg.KafkaPartitions); err != nil {
		return nil, err
	}
	if produce {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(s.brokers...),
			kgo.DefaultProduceTopic(s.topic),
			kgo.MaxBufferedRecords(decisionBuffer),
			kgo.ProducerLinger(2*time.Millisecond),
			kgo.RecordDeliveryTimeout(10*time.Second),
		)
		if err != nil {
			return nil, fmt.Errorf("decision stream: %w", err)
		}
		s.cl = cl
	}
	return s, nil
}

// ensureTopic creates the topic when it does not exist.
func (s *decisionStream) ensureTopic(ctx context.Context, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		return fmt.Errorf("decision stream: %w", err)
	}
	defer cl.Close()
	if partitions <= 0 {
		partitions = 6
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"retention.ms": new("3600000")}, s.topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("decision stream: create topic %q: %w", s.topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("decision stream: create topic %q: %w", s.topic, resp.Err)
	}
	// A topic just created may take a moment to be served.
	for {
		ends, err := adm.ListEndOffsets(ctx, s.topic)
		if err == nil && ends.Error() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("decision stream: topic %q not served: %w", s.topic, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeHeader is the Kafka record header naming the API node that made the
// decision.
const nodeHeader = "sightline-node"

// publish hands a decision record to the producer without waiting; a full
// buffer drops it (counted).
func (s *decisionStream) publish(requestID string, rec []byte) {
	r := &kgo.Record{Key: []byte(requestID), Value: append([]byte(nil), rec...), Headers: []kgo.RecordHeader{{Key: nodeHeader, Value: s.node}}}
	s.cl.TryProduce(context.Background(), r, func(_ *kgo.Record, err error) {
		if err != nil {
			s.dropped.Inc()
			return
		}
		s.published.Inc()
	})
}

// consume reads the stream from about recent records before its end until
// ctx is done, calling fn with each record's value and the node that
// published it, from one goroutine; a record fn returns an error for is
// counted as rejected. It calls loaded once, from the same
// goroutine, when it has read every record that was in the stream when it
// started (at once when there were none).
func (s *decisionStream) consume(ctx context.Context, recent int64, loaded func(), fn func(node string, rec []byte) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		return fmt.Errorf("decision stream: %w", err)
	}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, s.topic)
	}
	if err == nil {
		err = ends.Error()
	}
	cl.Close()
	if err != nil {
		return fmt.Errorf("decision stream %q: offsets: %w", s.topic, err)
	}
	per := recent / max(int64(len(ends[s.topic])), 1)
	from := map[int32]kgo.Offset{}
	backlog := map[int32]int64{} // partition → end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		at := max(o.Offset-per, 0)
		if st, ok := starts.Lookup(s.topic, o.Partition); ok {
			at = max(at, st.Offset)
		}
		from[o.Partition] = kgo.NewOffset().At(at)
		if at < o.Offset {
			backlog[o.Partition] = o.Offset
		}
	})
	cl, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: from}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("decision stream: %w", err)
	}
	defer cl.Close()
	for {
		if len(backlog) == 0 && loaded != nil {
			loaded()
			loaded = nil
		}
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.logger.LogAttrs(ctx, slog.LevelWarn, "decision stream: fetch", slog.Int("partition", int(p)), slog.Any("err", err))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			s.consumed.Inc()
			if end, ok := backlog[r.Partition]; ok && r.Offset+1 >= end {
				delete(backlog, r.Partition)
			}
			node := ""
			for _, h := range r.Headers {
				if h.Key == nodeHeader {
					node = string(h.Value)
				}
			}
			if fn(node, r.Value) != nil {
				s.rejected.Inc()
			}
		})
	}
}

// backlogWait bounds how long a trainer that becomes active waits for the
// decision stream's backlog (see awaitBacklog) before it learns anyway.
const backlogWait = 10 * time.Second

// awaitBacklog waits until loaded is closed (consume read the decisions
// that were in the stream when the trainer became active), ctx is done,
// or backlogWait passes. The events a new trainer learns again (those
// after the last publication) answer decisions made before it took over:
// learning them before those decisions are in the ring would rebuild their
// contexts from the current features.
func (s *decisionStream) awaitBacklog(ctx context.Context, loaded <-chan struct{}) {
	t := time.NewTimer(backlogWait)
	defer t.Stop()
	select {
	case <-loaded:
	case <-ctx.Done():
	case <-t.C:
		s.logger.LogAttrs(ctx, slog.LevelWarn, "decision stream: the recent decisions were not read back in time: learning on; events whose decision is still unread learn from rebuilt contexts",
			slog.Duration("waited", backlogWait))
	}
}

// close flushes what the producer holds, for up to a few seconds.
func (s *decisionStream) close() error {
	if s.cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.cl.Flush(ctx)
	s.cl.Close()
	if err != nil {
		return fmt.Errorf("decision stream: flush: %w", err)
	}
	return nil
}
