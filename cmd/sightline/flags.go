package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/app"
)

// newFlagSet returns a flag set whose usage names the command and the
// environment variables.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sightline %s [flags]\n\n%s\n\nflags (each also settable as SIGHTLINE_<FLAG>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse applies SIGHTLINE_* environment variables, then the arguments.
func parse(fs *flag.FlagSet, args []string) error {
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		env := "SIGHTLINE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", env, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return fs.Parse(args)
}

// nodeFlags registers the flags of a node on fs and returns the config they fill.
func nodeFlags(fs *flag.FlagSet) (*app.Config, *string) {
	c := &app.Config{Version: version}
	level := fs.String("log-level", "info", "minimum log level: debug, info, warn, error")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the event log, snapshots and journals")
	fs.StringVar(&c.Split, "split", "ftrl=50,popularity=50", "variant split, name=weight pairs")
	fs.Float64Var(&c.Explore, "explore", 0.05, "share of slots filled by exploration (negative disables)")
	decisionFlags(fs, c)
	sloFlags(fs, c)
	eventFlags(fs, c)
	rolloutFlags(fs, c)
	accessFlags(fs, c)
	fs.DurationVar(&c.FeatureBudget, "feature-budget", 5*time.Millisecond, "feature fetch deadline")
	fs.DurationVar(&c.ModelBudget, "model-budget", 5*time.Millisecond, "model inference deadline")
	fs.Float64Var(&c.MinConfidence, "min-confidence", 0.005, "fall back with low_confidence below this top score")
	fs.StringVar(&c.Fsync, "fsync", "always", "event log fsync policy: always, interval, never")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", time.Minute, "how often model and features are snapshotted")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", 0.01, "head sampling ratio (errors, fallbacks and slow requests are always kept)")
	fs.DurationVar(&c.SlowThreshold, "slow-threshold", 50*time.Millisecond, "keep every trace slower than this")
	fs.BoolFunc("tail-retention", "keep every trace with an error, a fallback or a slow request (default true; false records only head-sampled traces, to measure what telemetry costs)", func(v string) error {
		on, err := strconv.ParseBool(v)
		c.DisableTailRetention = !on
		return err
	})
	fs.Float64Var(&c.DecisionLogRatio, "decision-log-ratio", 0.01, "share of normal decisions logged at INFO (fallbacks always)")
	fs.StringVar(&c.TraceExporter, "trace-exporter", "none", "trace export: none, otlp (OTEL_EXPORTER_OTLP_* variables), stdout")
	fs.StringVar(&c.PseudonymKey, "pseudonym-key", "", "key for user id pseudonyms in logs and traces (default: random per process)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for /admin and /debug/pprof (empty disables them)")
	fs.DurationVar(&c.QualityWindow, "quality-window", 5*time.Minute, "sliding window of feature null rate, drift (PSI) and CTR signals")
	fs.DurationVar(&c.AlertInterval, "alert-interval", 15*time.Second, "how often alert rules are evaluated in process")
	fs.StringVar(&c.FeatureStore, "feature-store", app.StoreMemory, "feature store: memory (snapshotted to --data-dir) or redis (the store of record; see --redis-addr)")
	fs.StringVar(&c.RedisAddr, "redis-addr", "127.0.0.1:6379", "host:port of Redis, with --feature-store redis")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "sightline:", "prefix of every Redis key, so deployments can share a server")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", 50*time.Millisecond, "how long each Redis command waits for its reply (the serving path's feature budget bounds reads anyway)")
	fs.StringVar(&c.Bus, "bus", app.BusEmbedded, "event bus: embedded (a durable log in --data-dir) or kafka (see --kafka-brokers)")
	fs.Var((*listValue)(&c.KafkaBrokers), "kafka-brokers", "Kafka seed brokers, host:port[,host:port...], with --bus kafka")
	fs.StringVar(&c.KafkaTopic, "kafka-topic", "sightline-events", "Kafka event topic (created if missing)")
	fs.StringVar(&c.KafkaGroup, "kafka-group", "sightline", "prefix of this node's Kafka consumer groups: with --role all, unique per node (each keeps a full model); the nodes of a cluster share one and add their role and --node-name")
	fs.StringVar(&c.Role, "role", app.RoleAll, "what the node does: all (one node: serves and learns), api (stateless serving node of a cluster) or trainer (learns and publishes models; one active, the others standby); api and trainer need --bus kafka and --feature-store redis")
	fs.StringVar(&c.NodeName, "node-name", "", "name of the node in the cluster (trainer lease, stats, logs); default host name and port")
	fs.StringVar(&c.KafkaDecisionsTopic, "kafka-decisions-topic", "sightline-decisions", "Kafka topic of the decision stream: API nodes publish each decision's training context, the trainer joins events to it")
	fs.DurationVar(&c.PublishInterval, "publish-interval", time.Second, "trainer: how often the active trainer publishes its model when it changed")
	fs.DurationVar(&c.FollowInterval, "follow-interval", 250*time.Millisecond, "api: how often an API node looks for a newer published model")
	fs.DurationVar(&c.TrainerLease, "trainer-lease", 3*time.Second, "trainer: time-to-live of the active trainer's lease; a standby takes over within about this long after the active one dies")
	fs.IntVar(&c.DecisionRing, "decision-ring", 50_000, "recent decisions kept to join events to them; on a trainer, of the whole cluster, and read back from the decision stream when it becomes active (size it to the decisions made over the click delay you expect)")
	fs.Func("kafka-partitions", "partitions of the Kafka topic when the node creates it (default 6)", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number of partitions, got %q", s)
		}
		c.KafkaPartitions = int32(n)
		return nil
	})
	return c, level
}

// listValue is a flag value of comma-separated strings; empty items are
// dropped.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(s string) error {
	*l = (*l)[:0]
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// finish turns flag values into config values: explicit zeros mean "off"
// where the config's zero value means "default".
func finish(c *app.Config, level string) error {
	if c.TraceSampleRatio == 0 {
		c.TraceSampleRatio = -1 // tail retention only
	}
	if c.Explore == 0 {
		c.Explore = -1
	}
	if c.DecisionLogRatio == 0 {
		c.DecisionLogRatio = -1
	}
	return c.LogLevel.UnmarshalText([]byte(level))
}

// runtimeSettings are the Go runtime settings of a serving node: the
// garbage collector's and the number of processors that run goroutines.
type runtimeSettings struct {
	percent int
	limit   byteSize
	procs   int
}

// runtimeFlags registers the Go runtime flags on fs. The garbage collector
// defaults trade memory for tail latency: with 400 the collector runs a
// fifth as often as with Go's default of 100 (each cycle scans the whole
// feature store and decision ring, competing with requests for the CPU),
// and the soft memory limit makes it collect sooner when the heap nears the
// limit, so a large world stays within its memory budget.
func runtimeFlags(fs *flag.FlagSet) *runtimeSettings {
	g := &runtimeSettings{limit: 2 << 30, procs: -1}
	fs.IntVar(&g.percent, "gc-percent", 400, "garbage collector target: heap growth in percent over the live heap between collections (as GOGC; negative: collect only at --memory-limit)")
	fs.Var(&g.limit, "memory-limit", "soft memory limit of the Go runtime (as GOMEMLIMIT), e.g. 2GiB, 512MiB; 0 means none")
	fs.IntVar(&g.procs, "gomaxprocs", -1, "processors that run goroutines at once (as GOMAXPROCS); 0: Go's default (the machine's cores, or the container's CPU limit); -1 (default): twice the cores when the node may use them all and GOMAXPROCS is not set, else Go's default")
	return g
}

// apply sets the settings in the Go runtime; they override GOGC,
// GOMEMLIMIT and, given explicitly, GOMAXPROCS.
func (g *runtimeSettings) apply() {
	debug.SetGCPercent(g.percent)
	if g.limit > 0 {
		debug.SetMemoryLimit(int64(g.limit))
	} else {
		debug.SetMemoryLimit(1<<63 - 1) // no limit
	}
	if n := maxProcs(g.procs, runtime.GOMAXPROCS(0), runtime.NumCPU(), os.Getenv("GOMAXPROCS") != ""); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}

// maxProcs is the GOMAXPROCS a node sets for the flag value flag, given
// Go's default def, the machine's cores and whether the environment set
// GOMAXPROCS; 0 leaves Go's choice.
//
// By default a node that may use every core runs twice as many processors
// as cores. On a machine whose cores it shares with other busy processes
// (a load generator, a collector, other services), a thread holding one
// of only as many processors as cores is often descheduled by the kernel,
// in the middle of a request or a write, and the goroutines queued on
// that processor wait for it: at saturation on 2 cores beside a load
// generator, a tenth of requests waited about 10 ms, and the p99 was four
// times the bare handler's (docs/benchmarks.md, "Tail at saturation").
// With spare processors the others run meanwhile. Under a container's CPU
// limit (Go's default below the cores) more threads than the quota would
// only be throttled, so the default is kept there.
func maxProcs(flag, def, cores int, env bool) int {
	switch {
	case flag > 0:
		return flag
	case flag == 0 || env || def < cores:
		return 0
	default:
		return 2 * cores
	}
}

// byteSize is a flag value of bytes with an optional binary unit suffix:
// B, KiB, MiB, GiB or TiB.
type byteSize int64

func (b *byteSize) String() string {
	if b == nil {
		return "0"
	}
	v := int64(*b)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return strconv.FormatInt(v>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}} {
		if n, ok := strings.CutSuffix(num, u.name); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<63-1)>>shift {
		return fmt.Errorf("want a non-negative number of bytes with an optional unit B, KiB, MiB, GiB or TiB, got %q", s)
	}
	*b = byteSize(v << shift)
	return nil
}
