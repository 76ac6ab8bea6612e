package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// Errors of the writer.
var (
	// ErrRunning reports a second call of [Writer.Run].
	ErrRunning = errors.New("decisionlog: writer already run")
)

// retentionEvery is how often Run enforces retention and refreshes the
// disk gauges.
const retentionEvery = time.Minute

// writeBatch is the number of rows an open events file collects before
// they are handed to parquet-go's writer in one call (fewer when the queue
// runs empty). A decisions file's encoder takes each row as it comes.
const writeBatch = 256

// drainEvery is how often Run takes what is queued. The writer's goroutine
// does not wait on the queue: a caller of Record would then wake it for
// nearly every record, which costs the caller a futex and the writer a
// batch of one row, several times the cost of the row itself. Rows reach
// their files this much later, well within the RollInterval readers wait
// for anyway; at the default Buffer the queue absorbs 1.3 million entries
// a second.
const drainEvery = 50 * time.Millisecond

// Writer writes the decision log: decisions (engine records) and the events
// joined to them, as Parquet files partitioned by hour (see the package
// documentation and docs/decision-log.md). Record, RecordFrom and Event
// never block: they copy what they are given into a bounded queue, and a
// full queue drops and counts. Run owns the goroutine that decodes,
// samples, writes and closes files and enforces retention.
//
// All methods are safe for concurrent use.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	met   *metrics
	cnt   counts
	queue chan entry

	// head is the enqueue time (unix nanos) of the oldest entry in the
	// queue as far as the writer knows, 0 when it is caught up.
	head atomic.Int64
	// inflight counts callers between their stopped check and their send,
	// so that shutdown can drain every entry that made it in.
	inflight atomic.Int64
	started  atomic.Bool
	stopped  atomic.Bool

	// Cached hot-path counters.
	dropFull    [2]prometheus.Counter
	dropClosed  [2]prometheus.Counter
	sampledOutD prometheus.Counter
	sampledOutE prometheus.Counter

	// Owned by Run's goroutine.
	node      string // node name as used in file names
	dfiles    map[int64]*partFile[*decisionsFile]
	efiles    map[int64]*partFile[*eventsFile]
	lastName  int64 // last unix-nanos stamp used in a file name
	lastErrAt time.Time
	errsQuiet int // errors not logged since lastErrAt
	// diskBytes and diskFiles mirror the gauges between scans.
	diskBytes, diskFiles int64
	// dec decodes the queued records.
	dec engine.RecordDecoder
	// pageSize is the page size of the decisions files (0: default); tests
	// make it small.
	pageSize int
	// spare are encoders of closed decisions files, for new ones to reuse.
	spare []*decisionsFile
}

// recordBufs recycles the buffers Record copies records into: the writer's
// goroutine releases each once the decisions file's encoder has copied its
// values, so the queue costs no allocation per record.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledRecord is the largest record buffer kept for reuse.
const maxPooledRecord = 64 << 10

// releaseRecord returns a record buffer to recordBufs.
func releaseRecord(b *[]byte) {
	if cap(*b) <= maxPooledRecord {
		*b = (*b)[:0]
		recordBufs.Put(b)
	}
}

// entry is one queued record or event.
type entry struct {
	rec  *[]byte // an engine decision record (from recordBufs), or nil for an event
	node string  // the node that served the decision
	ev   *Event  // the event row when rec is nil
	at   int64   // enqueue time, unix nanos
}

// New returns a writer configured by cfg; [Writer.Run] starts it. Records
// and events given before Run starts wait in the queue.
func New(cfg Config) (*Writer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:    cfg,
		log:    cfg.Logger,
		queue:  make(chan entry, cfg.Buffer),
		node:   fileSafe(cfg.Node),
		dfiles: map[int64]*partFile[*decisionsFile]{},
		efiles: map[int64]*partFile[*eventsFile]{},
	}
	met, err := newMetrics(cfg.Registerer, w)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: register metrics: %w", err)
	}
	w.met = met
	for i, k := range []string{kindDecisions, kindEvents} {
		w.dropFull[i] = met.dropped.WithLabelValues(k, reasonQueueFull)
		w.dropClosed[i] = met.dropped.WithLabelValues(k, reasonClosed)
	}
	w.sampledOutD = met.sampledOut.WithLabelValues(kindDecisions)
	w.sampledOutE = met.sampledOut.WithLabelValues(kindEvents)
	return w, nil
}

// Record queues an encoded engine decision record ([engine.Config].OnRecord
// hands one out) for the log, as served by this writer's Config.Node. It
// copies rec, never blocks, and decodes nothing: the writer's goroutine
// does. It reports false when the record was dropped (queue full, writer
// stopped); a record the store ratio leaves out still reports true.
func (w *Writer) Record(rec []byte) bool {
	return w.RecordFrom(w.cfg.Node, rec)
}

// RecordFrom is Record for a decision served by node: a trainer writes the
// records of every API node read from the decision stream, with the node
// named in the stream's record header.
func (w *Writer) RecordFrom(node string, rec []byte) bool {
	b := recordBufs.Get().(*[]byte)
	*b = append((*b)[:0], rec...)
	if !w.enqueue(entry{rec: b, node: node}, 0) {
		releaseRecord(b)
		return false
	}
	return true
}

// Event queues an event joined to a decision (one with a RequestID) for the
// log. It copies what it keeps of ev (never the user id) and never blocks.
// The event of a decision the store ratio leaves out is left out too. It
// reports false when the event has no request id or was dropped (queue
// full, writer stopped).
func (w *Writer) Event(ev *event.Event) bool {
	if ev.RequestID == "" {
		return false
	}
	if !Keep(ev.RequestID, w.cfg.StoreRatio) {
		w.sampledOutE.Inc()
		return true
	}
	return w.enqueue(entry{ev: eventRow(ev, w.cfg.Now())}, 1)
}

// enqueue puts e on the queue without blocking; kind is its kind index.
func (w *Writer) enqueue(e entry, kind int) bool {
	w.inflight.Add(1)
	defer w.inflight.Add(-1)
	if w.stopped.Load() {
		w.dropClosed[kind].Inc()
		return false
	}
	e.at = w.cfg.Now().UnixNano()
	select {
	case w.queue <- e:
		w.head.CompareAndSwap(0, e.at)
		return true
	default:
		w.dropFull[kind].Inc()
		w.cnt.dropped[kind].Add(1)
		return false
	}
}

// queueAge is the age in seconds of the oldest queued entry, approximately
// (it may read 0 for the instant after the writer caught up).
func (w *Writer) queueAge() float64 {
	if len(w.queue) == 0 {
		return 0
	}
	h := w.head.Load()
	if h == 0 {
		return 0
	}
	return max(0, float64(w.cfg.Now().UnixNano()-h)/1e9)
}

// Stats are running totals of a [Writer], for in-process alert rules and
// the console.
type Stats struct {
	// DecisionsWritten and EventsWritten are the rows in closed files.
	DecisionsWritten, EventsWritten int64
	// DecisionsDropped and EventsDropped are the rows lost while the
	// writer ran: queue full, undecodable record, failed file.
	DecisionsDropped, EventsDropped int64
	// QueueLen and QueueCap are the queue's use and size.
	QueueLen, QueueCap int
	// QueueAge is how long the oldest queued entry has waited (about).
	QueueAge time.Duration
}

// Stats returns the writer's running totals.
func (w *Writer) Stats() Stats {
	return Stats{
		DecisionsWritten: w.cnt.written[0].Load(), EventsWritten: w.cnt.written[1].Load(),
		DecisionsDropped: w.cnt.dropped[0].Load(), EventsDropped: w.cnt.dropped[1].Load(),
		QueueLen: len(w.queue), QueueCap: cap(w.queue),
		QueueAge: time.Duration(w.queueAge() * float64(time.Second)),
	}
}

// roomWait bounds how long [Writer.WaitRoom] waits.
const roomWait = time.Second

// WaitRoom waits while the queue is at least half full, for at most a
// second, or until ctx ends or the writer stops. A caller that reads a
// durable stream (the event bus replaying after a restart, the decision
// stream) calls it before handing over a batch, so that it slows to the
// writer's pace instead of dropping rows; a burst the writer cannot absorb
// in that time is still dropped and counted, so the stream is never held
// up for long. Serving never calls it.
func (w *Writer) WaitRoom(ctx context.Context) {
	if len(w.queue) < cap(w.queue)/2 {
		return
	}
	t := time.NewTimer(roomWait)
	defer t.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for len(w.queue) >= cap(w.queue)/2 && !w.stopped.Load() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
		}
	}
}

// Run writes what Record and Event queue until ctx is done: it removes the
// temporary files an earlier run of this node left (a kill -9), then
// decodes, samples and writes rows into the open file of their kind and
// hour, closes each file RollInterval after its first row or at
// MaxFileRows, and enforces retention every minute. When ctx is done it
// writes what is queued (for at most DrainTimeout), closes every file and
// returns. It returns an error only when the directory cannot be created
// or a file could not be closed at shutdown; write errors during the run
// drop the rows of the failing file, count them and are logged. Run may be
// called once.
func (w *Writer) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if err := os.MkdirAll(w.cfg.Dir, 0o750); err != nil {
		w.stop()
		w.dropQueued()
		return fmt.Errorf("decisionlog: create directory: %w", err)
	}
	w.removeAbandoned(ctx)
	w.enforceRetention(ctx)

	roll := time.NewTimer(time.Hour)
	roll.Stop()
	defer roll.Stop()
	ret := time.NewTicker(retentionEvery)
	defer ret.Stop()
	drain := time.NewTicker(drainEvery)
	defer drain.Stop()
	for {
		select {
		case <-ctx.Done():
			return w.shutdown(ctx)
		case <-drain.C:
			// Take what is queued, at most a queue's worth so that rolls
			// and retention get their turn, and hand it to the encoder.
			n := 0
			for range cap(w.queue) {
				e, ok := w.poll()
				if !ok {
					break
				}
				w.handle(ctx, e)
				n++
			}
			if n > 0 {
				w.writePending(ctx)
				w.resetRoll(roll)
			}
		case <-roll.C:
			w.rollDue(ctx)
			w.resetRoll(roll)
		case <-ret.C:
			w.enforceRetention(ctx)
		}
	}
}

// stop refuses new entries and waits for the callers already past the
// check to finish their (non-blocking) send.
func (w *Writer) stop() {
	w.stopped.Store(true)
	for w.inflight.Load() != 0 {
		runtime.Gosched()
	}
}

// poll takes an entry from the queue without waiting.
func (w *Writer) poll() (entry, bool) {
	select {
	case e := <-w.queue:
		return e, true
	default:
		return entry{}, false
	}
}

// dropQueued empties the queue, counting its entries as dropped (closed).
func (w *Writer) dropQueued() {
	for {
		select {
		case e := <-w.queue:
			k := 0
			if e.rec == nil {
				k = 1
			} else {
				releaseRecord(e.rec)
			}
			w.dropClosed[k].Inc()
		default:
			w.head.Store(0)
			return
		}
	}
}

// shutdown drains the queue for at most DrainTimeout and closes every
// file.
func (w *Writer) shutdown(ctx context.Context) error {
	w.stop()
	deadline := w.cfg.Now().Add(w.cfg.DrainTimeout)
	ctx = context.WithoutCancel(ctx)
	for n := 0; n%writeBatch != 0 || !w.cfg.Now().After(deadline); n++ {
		e, ok := w.poll()
		if !ok {
			break
		}
		w.handle(ctx, e)
	}
	left := len(w.queue)
	w.dropQueued()
	var errs []error
	for key, p := range w.dfiles {
		errs = append(errs, closePart(ctx, w, w.dfiles, key, p))
	}
	for key, p := range w.efiles {
		errs = append(errs, closePart(ctx, w, w.efiles, key, p))
	}
	err := errors.Join(errs...)
	w.log.LogAttrs(ctx, slog.LevelInfo, "decision log stopped",
		slog.Int("dropped_at_shutdown", left), slog.Bool("files_closed", err == nil))
	if err != nil {
		return fmt.Errorf("decisionlog: close files: %w", err)
	}
	return nil
}

// handle decodes, samples and adds one queued entry.
func (w *Writer) handle(ctx context.Context, e entry) {
	if len(w.queue) == 0 {
		w.head.Store(0)
	} else {
		w.head.Store(e.at)
	}
	if e.rec == nil {
		p, key := filePart(ctx, w, w.efiles, kindEvents, e.ev.Time, time.Unix(0, e.at), newEventsFile)
		if p != nil {
			p.enc.pending = append(p.enc.pending, *e.ev)
			rowAdded(ctx, w, w.efiles, key, p)
		}
		return
	}
	// The record is released once its values are copied into the
	// decisions file's columns.
	defer releaseRecord(e.rec)
	d, x, feats, err := w.dec.DecodeFlat(*e.rec)
	if err != nil {
		w.dropped(kindDecisions, reasonError, 1)
		w.logError(ctx, "decision log: bad record", err)
		return
	}
	if !Keep(d.RequestID, w.cfg.StoreRatio) {
		w.sampledOutD.Inc()
		return
	}
	p, key := filePart(ctx, w, w.dfiles, kindDecisions, d.Time, time.Unix(0, e.at), newDecisionsEnc)
	if p == nil {
		return
	}
	if err := p.enc.add(d, x, feats, e.node); err != nil {
		p.rows++ // the row is lost with the file
		abandonPart(ctx, w, w.dfiles, key, p, err)
		return
	}
	rowAdded(ctx, w, w.dfiles, key, p)
}

// dropped counts n rows of kind lost for reason.
func (w *Writer) dropped(kind, reason string, n int) {
	w.met.dropped.WithLabelValues(kind, reason).Add(float64(n))
	if reason != reasonClosed {
		w.cnt.dropped[kindIndex(kind)].Add(int64(n))
	}
}

// logError logs an error, at most once a minute with the count of the ones
// not logged since.
func (w *Writer) logError(ctx context.Context, msg string, err error) {
	now := w.cfg.Now()
	if !w.lastErrAt.IsZero() && now.Sub(w.lastErrAt) < time.Minute {
		w.errsQuiet++
		return
	}
	w.log.LogAttrs(ctx, slog.LevelError, msg, slog.Any("err", err), slog.Int("errors_not_logged", w.errsQuiet))
	w.lastErrAt, w.errsQuiet = now, 0
}

// writePending hands every open events file's collected rows to
// parquet-go's writer (decisions files have none).
func (w *Writer) writePending(ctx context.Context) {
	for key, p := range w.dfiles {
		flushPart(ctx, w, w.dfiles, key, p)
	}
	for key, p := range w.efiles {
		flushPart(ctx, w, w.efiles, key, p)
	}
}

// rollDue closes the files whose RollInterval is up.
func (w *Writer) rollDue(ctx context.Context) {
	now := w.cfg.Now()
	for key, p := range w.dfiles {
		if !now.Before(p.deadline) {
			_ = closePart(ctx, w, w.dfiles, key, p) // counted and logged
		}
	}
	for key, p := range w.efiles {
		if !now.Before(p.deadline) {
			_ = closePart(ctx, w, w.efiles, key, p)
		}
	}
}

// resetRoll sets t to fire at the earliest roll deadline of the open
// files, or stops it when none is open.
func (w *Writer) resetRoll(t *time.Timer) {
	var next time.Time
	for _, p := range w.dfiles {
		if next.IsZero() || p.deadline.Before(next) {
			next = p.deadline
		}
	}
	for _, p := range w.efiles {
		if next.IsZero() || p.deadline.Before(next) {
			next = p.deadline
		}
	}
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(0, next.Sub(w.cfg.Now())))
}

// openHours reports the hour directories that hold an open file, which
// retention must not delete.
func (w *Writer) openHours() map[string]bool {
	m := make(map[string]bool, len(w.dfiles)+len(w.efiles))
	for _, p := range w.dfiles {
		m[p.dir] = true
	}
	for _, p := range w.efiles {
		m[p.dir] = true
	}
	return m
}
