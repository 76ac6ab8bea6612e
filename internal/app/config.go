package app

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/ingest"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/rollout"
	"github.com/sightline/sightline/internal/slo"
)

// Config is everything a node needs. The zero value of every field means its
// default; cmd/sightline fills it from flags and SIGHTLINE_* variables.
type Config struct {
	// Addr is the HTTP listen address, host:port (default 127.0.0.1:8080;
	// ":8080" listens on every interface). Use port 0 for an ephemeral
	// port; Node.Addr tells which. New fails on an address without a port.
	Addr string
	// DataDir holds the event log, snapshots and journals (default ./data).
	DataDir string
	// Split is the variant split, e.g. "ftrl=50,popularity=50".
	Split string
	// Explore is the exploration share (default 0.05; negative disables).
	Explore float64
	// ExploreTop restricts exploration to the best ExploreTop eligible
	// candidates of each slot (default 0: all of them).
	ExploreTop int
	// DecisionStore configures the Parquet decision log under
	// DataDir/decisions, written by a --role all node and by the active
	// trainer.
	DecisionStore DecisionStoreConfig
	// SLO configures the availability and latency SLOs and their
	// burn-rate alerts (objectives, latency threshold; drills scale the
	// windows); the node sets the clock and registerer.
	SLO slo.Config
	// Rollout configures guarded model rollouts (steps, holds, guardrails)
	// on a --role all node; the node sets its variant names, state file,
	// clock and telemetry.
	Rollout rollout.Config
	// FeatureBudget and ModelBudget are the stage deadlines (default 5ms each).
	FeatureBudget time.Duration
	ModelBudget   time.Duration
	// MinConfidence is the low-confidence threshold (default 0.005).
	MinConfidence float64
	// Fsync is the event log's fsync policy: always (default), interval, never.
	Fsync string
	// SnapshotInterval is how often state is snapshotted (default 1m;
	// negative disables periodic snapshots).
	SnapshotInterval time.Duration
	// Model configures the FTRL model.
	Model model.Config
	// TraceSampleRatio is the head sampling ratio (default 0.01; negative
	// keeps only what tail retention keeps).
	TraceSampleRatio float64
	// DisableTailRetention records only head-sampled traces (for measuring
	// what telemetry costs); by default errors, fallbacks and slow requests
	// are kept whole.
	DisableTailRetention bool
	// SlowThreshold keeps traces slower than this (default 50ms).
	SlowThreshold time.Duration
	// DecisionLogRatio is the share of normal decisions logged (default 0.01;
	// negative logs only fallbacks).
	DecisionLogRatio float64
	// TraceExporter is none (default), otlp or stdout.
	TraceExporter string
	// PseudonymKey keys the user id pseudonyms; empty means random per process.
	PseudonymKey string
	// AdminToken guards /admin and /debug routes beside API keys with the
	// admin scope; with neither, those routes are refused.
	AdminToken string
	// Access configures API keys, the loopback rule of a node without
	// them, and TLS (access.go).
	Access AccessConfig
	// Admission bounds the recommendation and event requests handled at
	// once (admission.go).
	Admission AdmissionConfig
	// LogLevel is the minimum log level (default info).
	LogLevel slog.Level
	// LogWriter receives JSON logs (default os.Stdout).
	LogWriter io.Writer
	// Version is the build version reported in metrics.
	Version string
	// Segments is the bounded set of user segments that quality signals
	// break down by (default new, casual, regular, power).
	Segments []string
	// Channels is the bounded set of channel label values (default web,
	// ios, android, email); others are folded into "other".
	Channels []string
	// QualityWindow is the sliding window of drift, null-rate and CTR
	// signals (default 5m).
	QualityWindow time.Duration
	// CTRBaselineHalfLife is the half-life of each variant's CTR baseline,
	// a moving average that learns only while CTR is near it (default 10m:
	// fast enough to follow a model that is still learning).
	CTRBaselineHalfLife time.Duration
	// AlertInterval is how often alert rules are evaluated in process
	// (default 15s; negative leaves evaluation to the caller, as drills do).
	AlertInterval time.Duration
	// OnFault, if set, is called after a fault is switched on or off (the
	// demo's traffic generator applies popularity-shift through it).
	OnFault func(name string, active bool)
	// Now is the clock of every component (default time.Now). Drills pass
	// an accelerated simulated clock.
	Now func() time.Time
	// EventMaxSkew is how far ahead of Now an event may be stamped
	// (default 5m; negative: no bound). Later events are rejected.
	EventMaxSkew time.Duration
	// EventMaxAge is how old an event may be (default 7 days, the event
	// log's retention; negative: no bound). Older events are rejected.
	EventMaxAge time.Duration

	// FeatureStore is where profiles, items and recent activity live:
	// memory (default; snapshotted to DataDir with a journal of imports)
	// or redis (Redis is the store of record: no feature snapshot or
	// journal). New fails when Redis does not answer.
	FeatureStore string
	// RedisAddr is the host:port of the Redis server (default
	// 127.0.0.1:6379).
	RedisAddr string
	// RedisPrefix starts every Redis key, so deployments can share a
	// server (default "sightline:").
	RedisPrefix string
	// RedisTimeout bounds each Redis command's wait for its reply (default
	// features.DefaultRedisReadTimeout, 50ms: the serving path's budget).
	RedisTimeout time.Duration

	// Bus is the event bus: embedded (default; a durable log in DataDir)
	// or kafka.
	Bus string
	// KafkaBrokers are the seed brokers, host:port; required with kafka.
	KafkaBrokers []string
	// KafkaTopic is the event topic (default "sightline-events").
	KafkaTopic string
	// KafkaGroup prefixes the node's consumer groups (default
	// "sightline"). A --role all node keeps a full copy of the model, so
	// each such node needs a group prefix of its own; the nodes of a
	// cluster share one, and each adds its role and name to it
	// (kafkaGroup).
	KafkaGroup string
	// KafkaPartitions is the partition count used when the topic does not
	// exist and the node creates it (default 6).
	KafkaPartitions int32

	// Role is what the node does: all (default; serves, learns and keeps
	// its own state, one node), api (a stateless serving node of a
	// cluster) or trainer (the learner of a cluster; one active, the
	// others standby). api and trainer need Bus kafka and FeatureStore
	// redis; docs/scaling.md has the picture.
	Role string
	// NodeName names the node in the cluster state, logs and the trainer
	// lease (default: host name and listen port).
	NodeName string
	// KafkaDecisionsTopic is the decision stream: API nodes publish each
	// decision's training context to it, the trainer joins events to them
	// (default "sightline-decisions").
	KafkaDecisionsTopic string
	// PublishInterval is how often the active trainer publishes a model
	// snapshot when the model changed (default 1s).
	PublishInterval time.Duration
	// FollowInterval is how often API nodes look for a newer published
	// model (default 250ms).
	FollowInterval time.Duration
	// TrainerLease is the time-to-live of the active trainer's lease: a
	// standby takes over at most this long (plus a third) after the
	// active one dies (default 3s).
	TrainerLease time.Duration
	// DecisionRing is the number of recent decisions kept for joining
	// events to them (default 50,000; on a trainer, of the whole cluster:
	// size it to the decisions of the click delay you expect). A trainer
	// that becomes active reads about this many back from the decision
	// stream before it learns, so the events it learns again join the
	// decisions they answer.
	DecisionRing int
}

// DecisionStoreConfig configures the Parquet decision log. The zero value
// means the defaults.
type DecisionStoreConfig struct {
	// Disabled turns the log off.
	Disabled bool
	// Ratio is the share of decisions kept, sampled by request id
	// (default 1: every decision).
	Ratio float64
	// Retention deletes hours older than this (default 7 days).
	Retention time.Duration
	// MaxBytes deletes the oldest files while the log is larger (default
	// 10 GiB; negative: no limit).
	MaxBytes int64
	// Pool is the number of best eligible candidates recorded with each
	// decision for offline evaluation (default 20; negative: none).
	Pool int
}

// Roles, the values of Config.Role.
const (
	RoleAll     = "all"
	RoleAPI     = "api"
	RoleTrainer = "trainer"
)

func (c *Config) defaults() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = time.Minute
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if len(c.Segments) == 0 {
		c.Segments = []string{"new", "casual", "regular", "power"}
	}
	if len(c.Channels) == 0 {
		c.Channels = []string{"web", "ios", "android", "email"}
	}
	if c.QualityWindow <= 0 {
		c.QualityWindow = 5 * time.Minute
	}
	if c.CTRBaselineHalfLife <= 0 {
		c.CTRBaselineHalfLife = 10 * time.Minute
	}
	if c.AlertInterval == 0 {
		c.AlertInterval = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.EventMaxSkew == 0 {
		c.EventMaxSkew = api.DefaultEventMaxSkew
	}
	if c.EventMaxAge == 0 {
		c.EventMaxAge = api.DefaultEventMaxAge
	}
	if c.Model.Now == nil {
		c.Model.Now = c.Now
	}
	if _, err := c.fsync(); err != nil {
		return err
	}
	if c.RedisAddr == "" {
		c.RedisAddr = features.DefaultRedisAddr
	}
	if c.KafkaTopic == "" {
		c.KafkaTopic = "sightline-events"
	}
	switch c.FeatureStore {
	case "":
		c.FeatureStore = StoreMemory
	case StoreMemory, StoreRedis:
	default:
		return fmt.Errorf("feature store %q: want %s or %s", c.FeatureStore, StoreMemory, StoreRedis)
	}
	if c.KafkaDecisionsTopic == "" {
		c.KafkaDecisionsTopic = "sightline-decisions"
	}
	if c.PublishInterval <= 0 {
		c.PublishInterval = time.Second
	}
	if c.FollowInterval <= 0 {
		c.FollowInterval = 250 * time.Millisecond
	}
	if c.TrainerLease <= 0 {
		c.TrainerLease = 3 * time.Second
	}
	if c.DecisionRing <= 0 {
		c.DecisionRing = 50_000
	}
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("listen address %q: want host:port, such as 127.0.0.1:8080 or :8080: %w", c.Addr, err)
	}
	if c.NodeName == "" {
		host, _ := os.Hostname()
		c.NodeName = host + ":" + port
	}
	switch c.Role {
	case "":
		c.Role = RoleAll
	case RoleAll:
	case RoleAPI, RoleTrainer:
		if c.Bus != BusKafka || c.FeatureStore != StoreRedis {
			return fmt.Errorf("role %s: needs --bus %s and --feature-store %s: the nodes of a cluster share them", c.Role, BusKafka, StoreRedis)
		}
	default:
		return fmt.Errorf("role %q: want %s, %s or %s", c.Role, RoleAll, RoleAPI, RoleTrainer)
	}
	switch c.Bus {
	case "":
		c.Bus = BusEmbedded
	case BusEmbedded:
	case BusKafka:
		if len(c.KafkaBrokers) == 0 {
			return fmt.Errorf("bus %s: no brokers: set the Kafka brokers (--kafka-brokers)", BusKafka)
		}
	default:
		return fmt.Errorf("bus %q: want %s or %s", c.Bus, BusEmbedded, BusKafka)
	}
	return nil
}

// kafkaGroup is the prefix of the node's consumer groups. The nodes of a
// cluster consume from positions they choose (an API node from the recent
// end, the active trainer from the published snapshot's offsets), so each
// has groups of its own: nodes sharing a group would split the partitions,
// and a standby trainer would wait for a dead one's session to time out.
func (c *Config) kafkaGroup() string {
	g := c.KafkaGroup
	if g == "" {
		g = "sightline"
	}
	if c.Role == RoleAll {
		return g
	}
	return g + "-" + c.Role + "-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, c.NodeName)
}

func (c *Config) fsync() (ingest.FsyncPolicy, error) {
	switch c.Fsync {
	case "", "always":
		return ingest.FsyncAlways, nil
	case "interval":
		return ingest.FsyncInterval, nil
	case "never":
		return ingest.FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync policy %q: want always, interval or never", c.Fsync)
}
