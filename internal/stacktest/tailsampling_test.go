package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/sightline/sightline/client"
)

// baselineKeeps reports whether the tail sampling processor's
// probabilistic policy (tailsamplingprocessor v0.161.0,
// internal/sampling/probabilistic.go, without hash_salt and without the
// tracestate feature gate) keeps trace id at the given share: the FNV-1a
// hash of the default salt and the id's bytes at or below share of the
// uint64 range.
func baselineKeeps(id trace.TraceID, share float64) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte("default-hash-seed"))
	_, _ = h.Write(id[:])
	boundary := new(big.Float).SetInt(new(big.Int).SetUint64(math.MaxUint64))
	threshold, _ := boundary.Mul(boundary, big.NewFloat(share)).Uint64()
	return h.Sum64() <= threshold
}

// avoidBaseline marks a context whose new trace must have an id the
// baseline policy drops, so that only the rule under test can keep it.
type avoidBaseline struct{}

// traceIDs is the test client's ID generator: random ids, drawn again in
// a context marked with avoidBaseline until the baseline policy would drop
// the trace.
type traceIDs struct{ share float64 }

var _ sdktrace.IDGenerator = traceIDs{}

func (g traceIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for {
		_, _ = rand.Read(tid[:])
		if tid.IsValid() && (ctx.Value(avoidBaseline{}) == nil || !baselineKeeps(tid, g.share)) {
			return tid, g.NewSpanID(ctx, tid)
		}
	}
}

func (traceIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		_, _ = rand.Read(sid[:])
	}
	return sid
}

// clientTracing returns a tracer provider exporting every span of service
// to the collector's OTLP gRPC receiver, with the ids of traceIDs. It is
// shut down when t ends.
func clientTracing(t *testing.T, collectorGRPC, service string, share float64) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(collectorGRPC), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithIDGenerator(traceIDs{share: share}),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			t.Errorf("client tracer provider shutdown: %v", err)
		}
	})
	return tp
}

// sent is one traced call of the test: its root span's trace id, how long
// the call took, and whether the node fell back.
type sent struct {
	id       trace.TraceID
	took     time.Duration
	fallback string
}

// TestCollectorTailSampling sends traces through a node and the shipped
// collector config to Jaeger: a node exporting every trace (head sampling
// 1) to the collector over OTLP, and a Go client (client.WithTracerProvider)
// exporting its spans of the same traces to the collector too. It checks
// the collector's second stage end to end:
//   - error traces (the client's span of a 404 is an error; the node's
//     spans are not) are kept,
//   - fallback traces (a known user without a required feature: the node
//     falls back with missing_features, no span errors) are kept,
//   - slow traces (a bulk import the node takes longer than the latency
//     threshold for) are kept,
//
// each with a trace id the baseline policy would drop, so the rule under
// test is the only reason it is there, and each complete: the client's
// spans and the node's; and ordinary traces (fast, no fallback, no error)
// are kept exactly when the probabilistic baseline selects their trace id
// at the configured share, and no other.
func TestCollectorTailSampling(t *testing.T) {
	bin := otelcolFromEnv(t)
	jOTLP, jQuery := jaegerFromEnv(t)
	sc := shippedSampling(t)
	// A call well under the latency threshold: the latency policy cannot
	// be why its trace is kept.
	fast := sc.slow * 6 / 10

	col := startCollector(t, bin, jOTLP, "")
	service := "stacktest-" + randomHex(4)
	n := startNode(t, col.nodeEnv(service), "--trace-exporter", "otlp", "--trace-sample-ratio", "1")
	w := loadWorld(t, n)
	known := completeUser(t, w)
	incomplete := "stacktest-incomplete-" + randomHex(4)
	if err := n.c.PutUser(context.Background(), client.User{UserID: incomplete, Segment: "returning", Region: "eu"}); err != nil {
		t.Fatalf("PutUser: %v", err)
	}

	tp := clientTracing(t, col.grpc, service+"-client", sc.baselineShare)
	tr := tp.Tracer("stacktest")
	c, err := client.New(n.base, client.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// traced runs call in a new trace, under a root span named op.
	traced := func(ctx context.Context, op string, call func(ctx context.Context) (fallback string, err error)) (sent, error) {
		ctx, span := tr.Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient))
		start := time.Now()
		fb, err := call(ctx)
		s := sent{id: span.SpanContext().TraceID(), took: time.Since(start), fallback: fb}
		span.End()
		return s, err
	}
	recommend := func(user string) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			r, err := c.Recommend(ctx, client.RecommendRequest{UserID: user, Count: 5, Context: client.Context{Channel: "web"}})
			if err != nil {
				return "", err
			}
			if r.Fallback != nil {
				return r.Fallback.Reason, nil
			}
			return "", nil
		}
	}

	// Ordinary traces, paced so that the node's export queue keeps up.
	const ordinaryN = 400
	ordinary := make([]sent, 0, ordinaryN)
	for range ordinaryN {
		s, err := traced(ctx, "stacktest ordinary", recommend(known))
		if err != nil {
			t.Fatalf("ordinary recommendation: %v", err)
		}
		ordinary = append(ordinary, s)
		time.Sleep(3 * time.Millisecond)
	}

	// The special traces, under ids the baseline drops. A call that
	// happened to be slow (a loaded machine) is made again, a little
	// later: the latency policy would keep it too.
	avoid := context.WithValue(ctx, avoidBaseline{}, true)
	special := func(kind string, call func(ctx context.Context) (string, error), check func(sent, error) error) sent {
		t.Helper()
		const tries = 20
		for range tries {
			s, err := traced(avoid, "stacktest "+kind, call)
			if err := check(s, err); err != nil {
				t.Fatalf("%s trace %s: %v", kind, s.id, err)
			}
			if kind == "slow" || s.took < fast {
				return s
			}
			t.Logf("%s call took %v (not under %v): again", kind, s.took, fast)
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no %s call under %v in %d tries", kind, fast, tries)
		return sent{}
	}
	errTrace := special("error", func(ctx context.Context) (string, error) {
		_, err := c.Decision(ctx, "stacktest-no-such-request")
		return "", err
	}, func(_ sent, err error) error {
		if ce, ok := errors.AsType[*client.Error](err); !ok || ce.Status != http.StatusNotFound {
			return fmt.Errorf("Decision of an unknown request: %w, want a 404", err)
		}
		return nil
	})
	fbTrace := special("fallback", recommend(incomplete), func(s sent, err error) error {
		if err != nil || s.fallback != "missing_features" {
			return fmt.Errorf("recommendation for a user without age bucket: fallback %q, error %w; want missing_features", s.fallback, err)
		}
		return nil
	})
	bulk := make([]string, 0, 20_000)
	for i := range cap(bulk) {
		b, _ := json.Marshal(client.User{UserID: fmt.Sprintf("stacktest-bulk-%d", i), AgeBucket: "25-34", Segment: "returning", Region: "eu", Device: "mobile"})
		bulk = append(bulk, string(b))
	}
	slowTrace := special("slow", func(ctx context.Context) (string, error) {
		_, err := c.ImportUsers(ctx, ndjson(bulk))
		return "", err
	}, func(s sent, err error) error {
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if s.took < 2*sc.slow {
			return fmt.Errorf("an import of %d users took %v, want at least %v to test the latency policy (raise the count)", len(bulk), s.took, 2*sc.slow)
		}
		return nil
	})
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("flush client spans: %v", err)
	}
	t.Logf("sent %d ordinary traces, then error %s, fallback %s, slow %s (import of %d users in %v)",
		len(ordinary), errTrace.id, fbTrace.id, slowTrace.id, len(bulk), slowTrace.took.Round(time.Millisecond))

	// Each special trace arrives whole: the client's root span and the
	// node's server span, kept for its own reason only.
	clientSvc := service + "-client"
	checks := []struct {
		kind   string
		s      sent
		server string // the node's server span
		check  func(tr jTrace) string
	}{
		{"error", errTrace, "GET /v1/decisions/{request_id}", func(tr jTrace) string {
			if !tr.hasTag("error", "true") {
				return "no span has error=true"
			}
			if tr.hasTag("sightline.fallback.reason", "") {
				return "a span has a fallback reason"
			}
			if tr.duration() >= sc.slow {
				return fmt.Sprintf("lasted %v, over the latency threshold %v", tr.duration(), sc.slow)
			}
			return ""
		}},
		{"fallback", fbTrace, "POST /v1/recommendations", func(tr jTrace) string {
			if !tr.hasTag("sightline.fallback.reason", "missing_features") {
				return "no span has sightline.fallback.reason=missing_features"
			}
			if tr.hasTag("error", "true") {
				return "a span has error=true"
			}
			if tr.duration() >= sc.slow {
				return fmt.Sprintf("lasted %v, over the latency threshold %v", tr.duration(), sc.slow)
			}
			return ""
		}},
		{"slow", slowTrace, "POST /v1/users:import", func(tr jTrace) string {
			if s, _ := tr.find(service, "POST /v1/users:import"); time.Duration(s.Duration)*time.Microsecond < sc.slow {
				return fmt.Sprintf("the node's import span lasted %v, under the latency threshold %v", time.Duration(s.Duration)*time.Microsecond, sc.slow)
			}
			if tr.hasTag("error", "true") || tr.hasTag("sightline.fallback.reason", "") {
				return "a span has an error or a fallback"
			}
			return ""
		}},
	}
	// Decisions wait decision_wait after a trace's first span, then the
	// node's and the collector's batches (5s each) and Jaeger's.
	patience := sc.decisionWait + 60*time.Second
	for _, ck := range checks {
		if baselineKeeps(ck.s.id, sc.baselineShare) {
			t.Fatalf("%s trace %s: the baseline would keep it; the id generator should have avoided it", ck.kind, ck.s.id)
		}
		id := ck.s.id.String()
		waitUntil(t, col.proc, patience, func() (bool, string) {
			tr, ok, err := jaegerTrace(ctx, jQuery, id)
			switch {
			case err != nil:
				return false, err.Error()
			case !ok:
				return false, fmt.Sprintf("%s trace %s is not in Jaeger", ck.kind, id)
			}
			if _, ok := tr.find(clientSvc, "stacktest "+ck.kind); !ok {
				return false, fmt.Sprintf("%s trace %s has no client root span; spans: %v", ck.kind, id, tr.ops())
			}
			if _, ok := tr.find(service, ck.server); !ok {
				return false, fmt.Sprintf("%s trace %s has no node span %q; spans: %v", ck.kind, id, ck.server, tr.ops())
			}
			if why := ck.check(tr); why != "" {
				t.Fatalf("%s trace %s: %s; spans: %v", ck.kind, id, why, tr.ops())
			}
			return true, ""
		})
		t.Logf("%s trace %s kept", ck.kind, id)
	}

	// The ordinary traces were decided before the special ones (they
	// arrived first): Jaeger now has every one the collector kept, once
	// the last batch is in.
	want := map[string]bool{} // trace id -> the baseline keeps it
	maybeSlow := map[string]bool{}
	for _, s := range ordinary {
		id := s.id.String()
		want[id] = baselineKeeps(s.id, sc.baselineShare)
		if s.took >= fast || s.fallback != "" {
			maybeSlow[id] = true // another policy may keep it
		}
	}
	var kept map[string]jTrace
	waitUntil(t, col.proc, 30*time.Second, func() (bool, string) {
		trs, err := jaegerSearch(ctx, jQuery, clientSvc, "stacktest ordinary")
		if err != nil {
			return false, err.Error()
		}
		kept = map[string]jTrace{}
		for _, tr := range trs {
			kept[normID(tr.TraceID)] = tr
		}
		var missing []string
		for id, keep := range want {
			if keep {
				if tr, ok := kept[id]; !ok {
					missing = append(missing, id)
				} else if _, ok := tr.find(service, "POST /v1/recommendations"); !ok {
					missing = append(missing, id+" (no node span)")
				}
			}
		}
		return len(missing) == 0, fmt.Sprintf("ordinary traces the baseline keeps, not (complete) in Jaeger: %v", missing)
	})
	predicted, extra := 0, 0
	for id, keep := range want {
		if keep {
			predicted++
			continue
		}
		if _, ok := kept[id]; ok {
			if maybeSlow[id] {
				extra++
				continue
			}
			t.Errorf("ordinary trace %s (fast, no fallback, no error) is in Jaeger, but the baseline at %v drops it", id, sc.baselineShare)
		}
	}
	share := float64(predicted) / float64(len(ordinary))
	t.Logf("ordinary traces kept: %d of %d (%.1f%%, configured %.0f%%), exactly those the baseline selects; %d more kept as slow or fallback",
		predicted, len(ordinary), 100*share, 100*sc.baselineShare, extra)
	// The selection is a hash: over 400 ids its share lies within a few
	// points of the configured one (the bounds are 5 standard deviations).
	sd := math.Sqrt(sc.baselineShare * (1 - sc.baselineShare) / float64(len(ordinary)))
	if math.Abs(share-sc.baselineShare) > 5*sd {
		t.Errorf("the baseline kept %.1f%% of ordinary traces, want %.0f%% ± %.1f", 100*share, 100*sc.baselineShare, 500*sd)
	}
	if dropped := nodeDroppedSpans(t, n); dropped > 0 {
		t.Logf("the node dropped %v spans on export", dropped)
	}
}

// nodeDroppedSpans returns the node's count of spans dropped on export
// (sightline_telemetry_dropped_total{signal="spans"}).
func nodeDroppedSpans(t *testing.T, n *node) float64 {
	t.Helper()
	resp, err := http.Get(n.base + "/metrics")
	if err != nil {
		t.Logf("GET /metrics: %v", err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "sightline_telemetry_dropped_total{") && strings.Contains(line, `signal="spans"`) {
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
