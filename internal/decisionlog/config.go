package decisionlog

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a [Writer]. The zero value of every field but Dir means
// its default.
type Config struct {
	// Dir is the decisions directory (<data-dir>/decisions); the writer
	// creates it and the date=YYYY-MM-DD/hour=HH partitions below it.
	// Required.
	Dir string
	// Node is the name of the process that writes (--node-name): it is
	// written in every file's metadata under [MetaNode], in the file names,
	// and in the node column of the decisions given to [Writer.Record]
	// (default "local").
	Node string
	// StoreRatio is the share of decisions kept, in (0, 1] (default 1: every
	// decision). A decision is kept when [Keep] says so for its request id,
	// and the events of a dropped decision are dropped with it. The ratio is
	// written in every file's metadata under [MetaStoreRatio].
	StoreRatio float64
	// Retention is how long an hour partition is kept after its hour ended
	// (default 7 days; negative keeps everything).
	Retention time.Duration
	// MaxBytes bounds the bytes of closed files under Dir: past it the
	// oldest files are deleted until the total is under it (default 0: no
	// bound).
	MaxBytes int64
	// Buffer is the number of records and events the queue between the
	// callers and the writer's goroutine holds; past it they are dropped and
	// counted (default 65,536).
	Buffer int
	// RollInterval is the longest a file stays open after its first row:
	// rows become visible to readers at most this long after they were
	// written, and a kill -9 loses at most this much of each open file
	// (default 1 minute).
	RollInterval time.Duration
	// MaxFileRows closes a file when it holds this many rows (default
	// 200,000).
	MaxFileRows int
	// RowGroupRows is the number of rows buffered in memory before they are
	// written out as one Parquet row group (default 16,384). It bounds the
	// memory of each open file.
	RowGroupRows int
	// DrainTimeout bounds how long Run spends writing what is left in the
	// queue once its context is done; what it cannot write in that time is
	// dropped and counted with reason "closed" (default 5 seconds).
	DrainTimeout time.Duration
	// Logger receives the writer's logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the writer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now). It stamps file names, decides
	// rolls and retention, and is read by metric scrapes, so it must be
	// safe for concurrent use; partitions come from the rows' own times.
	Now func() time.Time
}

// Defaults of [Config].
const (
	DefaultNode         = "local"
	DefaultRetention    = 7 * 24 * time.Hour
	DefaultBuffer       = 65_536
	DefaultRollInterval = time.Minute
	DefaultMaxFileRows  = 200_000
	DefaultRowGroupRows = 16_384
	DefaultDrainTimeout = 5 * time.Second
)

// errNoDir reports a Config without Dir.
var errNoDir = errors.New("decisionlog: no directory")

// defaults fills the zero fields of c and validates it.
func (c *Config) defaults() error {
	if c.Dir == "" {
		return errNoDir
	}
	if c.Node == "" {
		c.Node = DefaultNode
	}
	if c.StoreRatio == 0 {
		c.StoreRatio = 1
	}
	if math.IsNaN(c.StoreRatio) || c.StoreRatio <= 0 || c.StoreRatio > 1 {
		return fmt.Errorf("decisionlog: store ratio %v not in (0, 1]", c.StoreRatio)
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("decisionlog: max bytes %d is negative", c.MaxBytes)
	}
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	if c.RollInterval <= 0 {
		c.RollInterval = DefaultRollInterval
	}
	if c.MaxFileRows <= 0 {
		c.MaxFileRows = DefaultMaxFileRows
	}
	if c.RowGroupRows <= 0 {
		c.RowGroupRows = DefaultRowGroupRows
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
