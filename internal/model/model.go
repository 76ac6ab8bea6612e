package model

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/event"
)

// Errors returned by this package. Callers match them with errors.Is.
var (
	// ErrInvalidConfig reports a Config field out of range.
	ErrInvalidConfig = errors.New("invalid model config")
	// ErrCorruptSnapshot reports a snapshot that is truncated, has a bad
	// magic number or format version, fails its checksum or holds values
	// that cannot be part of a model.
	ErrCorruptSnapshot = errors.New("corrupt model snapshot")
	// ErrIncompatibleSnapshot reports a well-formed snapshot that does not
	// fit the Config it is loaded with (a different number of hash bits).
	ErrIncompatibleSnapshot = errors.New("incompatible model snapshot")
	// ErrInvalidSplit reports a variant split that cannot be used.
	ErrInvalidSplit = errors.New("invalid variant split")
)

// Defaults and limits of Config.
const (
	DefaultBits         = 20
	DefaultAlpha        = 0.1
	DefaultBeta         = 1.0
	DefaultL1           = 1.0
	DefaultL2           = 1.0
	DefaultName         = "ftrl"
	DefaultVersionEvery = 50_000
	DefaultEvalWindow   = 5 * time.Minute
	// DefaultOptimismPrior is the default Config.OptimismPrior: a prior
	// standard deviation of about 0.3 on an item's logit.
	DefaultOptimismPrior = 10

	// MinBits and MaxBits bound Config.Bits. At MaxBits the model holds
	// 2^26 coordinates of 24 bytes (1.5 GiB): z, n and the weight derived
	// from them.
	MinBits = 4
	MaxBits = 26
)

// Config configures a Model. The zero value of every field means its
// default.
type Config struct {
	// Bits is the log2 of the number of hashed coordinates, MinBits..MaxBits.
	// Zero means DefaultBits (20: one million coordinates, 24 MiB).
	Bits int
	// Alpha is the FTRL per-coordinate learning-rate scale. Zero means
	// DefaultAlpha; it must be positive.
	Alpha float64
	// Beta is the FTRL learning-rate smoothing term. Zero means DefaultBeta;
	// it must be positive.
	Beta float64
	// L1 is the L1 regularization strength; it makes weights exactly zero
	// until a feature has gathered enough evidence. Zero means DefaultL1; a
	// negative value means no L1 regularization.
	L1 float64
	// L2 is the L2 regularization strength. Zero means DefaultL2; a negative
	// value means no L2 regularization.
	L2 float64
	// Name is the model family name that starts Version, e.g. "ftrl". Zero
	// means DefaultName. At most 64 bytes of [A-Za-z0-9_-].
	Name string
	// VersionEvery is the number of updates after which Version changes.
	// Zero means DefaultVersionEvery.
	VersionEvery uint64
	// EvalWindow is the sliding time window of Eval. Zero means
	// DefaultEvalWindow; it must be at least one second.
	EvalWindow time.Duration
	// Now returns the current time, for the evaluation window. Nil means
	// time.Now.
	Now func() time.Time
	// Positions makes the model learn the bias of each display position
	// apart from the items (a weight per Context.Slot), so that an item
	// shown low is not taken for a worse item; scores are then the click
	// probability averaged over the positions the model has learned from.
	// False leaves positions out, as the first models did.
	Positions bool
	// Optimism adds to each item's ranking logit an upper-confidence
	// bonus, Optimism / √(OptimismPrior + n), where n is the item's
	// accumulated squared gradient (its Fisher information: about
	// impressions × CTR): items seldom shown rank higher until the model
	// knows them. Zero means none; it must not be negative.
	Optimism float64
	// OptimismPrior is the prior precision of an item's weight in the
	// bonus (the bonus of a new item is Optimism/√OptimismPrior). Zero
	// means DefaultOptimismPrior.
	OptimismPrior float64
}

// withDefaults returns cfg with zero fields replaced by defaults, and
// validates it.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Bits == 0 {
		cfg.Bits = DefaultBits
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = DefaultAlpha
	}
	if cfg.Beta == 0 {
		cfg.Beta = DefaultBeta
	}
	if cfg.L1 == 0 {
		cfg.L1 = DefaultL1
	}
	if cfg.L2 == 0 {
		cfg.L2 = DefaultL2
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.VersionEvery == 0 {
		cfg.VersionEvery = DefaultVersionEvery
	}
	if cfg.EvalWindow == 0 {
		cfg.EvalWindow = DefaultEvalWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OptimismPrior == 0 {
		cfg.OptimismPrior = DefaultOptimismPrior
	}
	switch {
	case cfg.Bits < MinBits || cfg.Bits > MaxBits:
		return cfg, fmt.Errorf("%w: bits %d: want %d..%d", ErrInvalidConfig, cfg.Bits, MinBits, MaxBits)
	case !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0):
		return cfg, fmt.Errorf("%w: alpha %v: want a positive finite number", ErrInvalidConfig, cfg.Alpha)
	case !(cfg.Beta > 0) || math.IsInf(cfg.Beta, 0):
		return cfg, fmt.Errorf("%w: beta %v: want a positive finite number", ErrInvalidConfig, cfg.Beta)
	case math.IsNaN(cfg.L1) || math.IsInf(cfg.L1, 0):
		return cfg, fmt.Errorf("%w: l1 %v: want a finite number", ErrInvalidConfig, cfg.L1)
	case math.IsNaN(cfg.L2) || math.IsInf(cfg.L2, 0):
		return cfg, fmt.Errorf("%w: l2 %v: want a finite number", ErrInvalidConfig, cfg.L2)
	case !validName(cfg.Name):
		return cfg, fmt.Errorf("%w: name %q: want 1..64 bytes of [A-Za-z0-9_-]", ErrInvalidConfig, cfg.Name)
	case cfg.EvalWindow < time.Second:
		return cfg, fmt.Errorf("%w: eval window %v: want at least 1s", ErrInvalidConfig, cfg.EvalWindow)
	case !(cfg.Optimism >= 0) || math.IsInf(cfg.Optimism, 0):
		return cfg, fmt.Errorf("%w: optimism %v: want a finite number >= 0", ErrInvalidConfig, cfg.Optimism)
	case !(cfg.OptimismPrior > 0) || math.IsInf(cfg.OptimismPrior, 0):
		return cfg, fmt.Errorf("%w: optimism prior %v: want a positive finite number", ErrInvalidConfig, cfg.OptimismPrior)
	}
	return cfg, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Label is the outcome Learn is told about.
type Label uint8

// The labels. An impression is learned as Negative when it is seen; a click
// on it later arrives as Flip, so that the pair totals one positive example.
// A click whose impression was never learned arrives as Positive.
const (
	// Negative is an impression without a click (y = 0).
	Negative Label = iota
	// Positive is a click whose impression was not learned (y = 1).
	Positive
	// Flip is a click on an impression already learned as Negative. It
	// applies the gradient of logloss(y=1) - logloss(y=0), which is -1 on
	// every active feature.
	Flip
)

// String returns "negative", "positive" or "flip".
func (l Label) String() string {
	switch l {
	case Negative:
		return "negative"
	case Positive:
		return "positive"
	case Flip:
		return "flip"
	}
	return "label(" + strconv.Itoa(int(l)) + ")"
}

// coord is the FTRL state of one coordinate, as float64 bits. Score reads
// it without locks; only Learn (under Model.mu) writes it. z and n of one
// coordinate share a cache line.
type coord struct {
	z, n atomic.Uint64
}

// Model is an online FTRL-Proximal logistic regression.
//
// Score, Prepare, Version, Updates and Eval are safe for concurrent use with
// each other and with Learn, LearnPrepared and WriteSnapshot; Score never
// blocks. Learn and LearnPrepared are safe for concurrent use but serialize
// on a writer mutex.
type Model struct {
	cfg       Config
	mask      uint64
	bias      uint64 // masked coordinate of the bias
	alpha     float64
	beta      float64
	l1, l2    float64
	coords    []coord
	w         []atomic.Uint64 // w[i] = weightOf(coords[i]) as float64 bits; Learn keeps it current
	rw        []atomic.Uint64 // with Config.Optimism: w[i] plus the optimism bonus of coords[i]; else nil
	updates   atomic.Uint64
	gen       uint64 // snapshot generation; changed only under mu
	version   atomic.Pointer[string]
	eval      evaluator
	slots     slotState  // position weights and their serving offset (Config.Positions)
	mu        sync.Mutex // serializes writers: Learn, WriteSnapshot
	learnPrep Prepared   // scratch for Learn, guarded by mu
	active    []uint32   // scratch for Learn, guarded by mu
	weights   []float64  // scratch for Learn, guarded by mu
}

// New returns an untrained Model (every weight zero, Version "<name>-v0.0").
func New(cfg Config) (*Model, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Model{
		cfg:    cfg,
		mask:   1<<uint(cfg.Bits) - 1,
		bias:   biasIndex() & (1<<uint(cfg.Bits) - 1),
		alpha:  cfg.Alpha,
		beta:   cfg.Beta,
		l1:     max(cfg.L1, 0),
		l2:     max(cfg.L2, 0),
		coords: make([]coord, 1<<uint(cfg.Bits)),
		w:      make([]atomic.Uint64, 1<<uint(cfg.Bits)),
		eval:   newEvaluator(cfg.EvalWindow),
	}
	if cfg.Optimism > 0 {
		m.rw = make([]atomic.Uint64, len(m.w))
		bonus := math.Float64bits(cfg.Optimism / math.Sqrt(cfg.OptimismPrior))
		for i := range m.rw {
			m.rw[i].Store(bonus)
		}
	}
	m.slots.init(m.mask)
	m.setVersion()
	return m, nil
}

// Version names the model state for decision records, e.g. "ftrl-v3.12":
// the Config name, the snapshot generation (0 for a model built by New, one
// more than the snapshot's for a model read from a snapshot) and
// Updates()/VersionEvery. It changes only every VersionEvery updates or on a
// snapshot restore, so it is a low-cardinality label. It does not allocate.
func (m *Model) Version() string {
	return *m.version.Load()
}

func (m *Model) setVersion() {
	v := m.cfg.Name + "-v" + strconv.FormatUint(m.gen, 10) + "." +
		strconv.FormatUint(m.updates.Load()/m.cfg.VersionEvery, 10)
	m.version.Store(&v)
}

// Updates returns the number of updates (Learn and LearnPrepared calls with
// a valid label) the model state includes, counting those before the
// snapshot it was restored from.
func (m *Model) Updates() uint64 {
	return m.updates.Load()
}

// weight returns the FTRL-Proximal weight of coordinate i. It reads the
// weight cached in m.w, which Learn and snapshot restores set with setState
// whenever they change z or n, so that Score does no square root or
// division per coordinate.
func (m *Model) weight(i uint64) float64 {
	return math.Float64frombits(m.w[i].Load())
}

// weightOf returns the FTRL-Proximal weight of a coordinate with state z, n:
//
//	w = 0                                          if |z| <= L1
//	w = -(z - sign(z)·L1) / ((β + √n)/α + L2)       otherwise
func (m *Model) weightOf(z, n float64) float64 {
	if math.Abs(z) <= m.l1 {
		return 0
	}
	return -(z - math.Copysign(m.l1, z)) / ((m.beta+math.Sqrt(n))/m.alpha + m.l2)
}

// setState stores the FTRL state z, n of coordinate i and the weight derived
// from it. Only writers call it: Learn under m.mu, and snapshot restores
// before the model is shared. A concurrent Score reads either the old or the
// new weight of the coordinate.
func (m *Model) setState(i uint64, z, n float64) {
	c := &m.coords[i]
	c.z.Store(math.Float64bits(z))
	c.n.Store(math.Float64bits(n))
	w := m.weightOf(z, n)
	m.w[i].Store(math.Float64bits(w))
	if m.rw != nil {
		m.rw[i].Store(math.Float64bits(w + m.cfg.Optimism/math.Sqrt(m.cfg.OptimismPrior+n)))
	}
}

// sigmoid is the logistic function with the logit clamped so that the
// result stays strictly inside (0, 1).
func sigmoid(x float64) float64 {
	x = min(max(x, -35), 35)
	return 1 / (1 + math.Exp(-x))
}

// Score writes to out[i] the predicted click probability of items[i] for the
// request p was prepared from. out must be at least as long as items.
//
// Score is called on the request path. It is safe for concurrent use,
// concurrent with Learn, takes no lock and does not allocate. It reads each
// coordinate atomically, so an item scored while Learn runs sees some
// features before and some after the update.
//
// The logit is summed as (bias [+ position offset] + request features) +
// item [+ optimism bonus] + (category + request×category crosses), the
// bracketed terms with Config.Positions and Config.Optimism (the bonus is
// part of the ranking score, so a score is then an optimistic
// probability). The last group depends only on the item's
// category, so it is computed once per distinct category of the call (a
// small direct-mapped cache on the stack), not once per item: candidates
// share a few dozen categories, and the crosses are most of the work.
func (m *Model) Score(p *Prepared, items []event.Item, out []float64) {
	m.Logits(p, items, out)
	for i := range items {
		out[i] = sigmoid(out[i])
	}
}

// Logits is Score without the final sigmoid: out[i] is the logit of the
// click probability of items[i], Sigmoid(out[i]) the probability. Ranking by
// logits ranks as by probabilities (the sigmoid is increasing), so a caller
// that converts only what it shows saves one exp per item. Same contract as
// Score.
func (m *Model) Logits(p *Prepared, items []event.Item, out []float64) {
	_ = out[:len(items)]
	base := m.weight(m.bias)
	if m.cfg.Positions {
		base += m.slots.offset()
	}
	for _, h := range p.req {
		base += m.weight(index(h) & m.mask)
	}
	// Each item's weight is a load from a table far larger than the
	// cache, at a coordinate only its hash knows. The loads are taken
	// apart from the hashing, a chunk of coordinates at a time, so that
	// the processor keeps many of them in flight at once instead of one
	// per iteration of a loop that also hashes and sums (the load was a
	// tenth of a node's CPU at saturation, stalled on cache misses).
	var ix [logitChunk]uint64
	var kb [logitChunk]ItemKey
	var cache [catCacheSize]catSum
	keys := p.keys
	if len(keys) != len(items) {
		keys = nil // not the items' keys: hashed here
	}
	for lo := 0; lo < len(items); lo += logitChunk {
		chunk := items[lo:min(lo+logitChunk, len(items))]
		ks := kb[:len(chunk)]
		if keys != nil {
			ks = keys[lo : lo+len(chunk)]
		} else {
			for i := range chunk {
				ks[i] = KeyOf(chunk[i])
			}
		}
		for i, k := range ks {
			ix[i] = k.item & m.mask
		}
		m.itemWeights(ix[:len(chunk)], base, out[lo:lo+len(chunk)])
		for i, k := range ks {
			c := k.cat
			if c == 0 {
				continue // a null category
			}
			e := &cache[(c^c>>32)%catCacheSize]
			if !e.ok || e.h != c {
				*e = catSum{h: c, s: m.categorySum(p, c), ok: true}
			}
			out[lo+i] += e.s
		}
	}
}

// logitChunk is the number of item coordinates Logits hashes before it
// loads their weights.
const logitChunk = 64

// itemWeights sets out[i] to base plus the ranking weight of item
// coordinate ix[i] (its weight, plus with Config.Optimism its bonus: one
// load either way, the sum is kept in m.rw), in a loop of loads only.
func (m *Model) itemWeights(ix []uint64, base float64, out []float64) {
	out = out[:len(ix)]
	tab := m.w
	if m.rw != nil {
		tab = m.rw
	}
	for i, c := range ix {
		out[i] = base + math.Float64frombits(tab[c].Load())
	}
}

// Sigmoid turns a logit of Logits into a probability.
func Sigmoid(logit float64) float64 { return sigmoid(logit) }

// catCacheSize is the number of per-category sums Score caches per call.
const catCacheSize = 64

// catSum is one entry of Score's per-call category cache.
type catSum struct {
	h  uint64
	s  float64
	ok bool
}

// categorySum is the category part of the logit: the category's weight plus
// the crosses of every request feature with it, summed in that order.
func (m *Model) categorySum(p *Prepared, c uint64) float64 {
	s := m.weight(index(c) & m.mask)
	for _, h := range p.req {
		s += m.weight(cross(h, c) & m.mask)
	}
	return s
}

// appendActive appends the coordinates of the features active for p and it
// to dst, in the order Score sums them.
func (m *Model) appendActive(dst []uint32, p *Prepared, it *event.Item) []uint32 {
	dst = append(dst, uint32(m.bias))
	for _, h := range p.req {
		dst = append(dst, uint32(index(h)&m.mask))
	}
	dst = append(dst, uint32(index(itemHash(it.ID))&m.mask))
	if it.Category != "" {
		c := categoryHash(it.Category)
		dst = append(dst, uint32(index(c)&m.mask))
		for _, h := range p.req {
			dst = append(dst, uint32(cross(h, c)&m.mask))
		}
	}
	return dst
}

// logit sums the weights of the active features of one example, laid out as
// appendActive lays them out (bias, r request features, item, then the
// category and its r crosses when the item has a category), grouped exactly
// as Score groups them so that Learn's prediction equals Score's bit for bit.
func logit(ws []float64, r int) float64 {
	base := ws[0]
	for _, w := range ws[1 : r+1] {
		base += w
	}
	s := base + ws[r+1]
	if len(ws) > r+2 {
		cs := ws[r+2]
		for _, w := range ws[r+3:] {
			cs += w
		}
		s += cs
	}
	return s
}

// Learn applies one online update for the request x and the item it,
// labelled l, and returns the click probability the model predicted for
// them before the update (progressive validation). The prediction also goes
// into Eval. An unknown label leaves the model unchanged and returns NaN.
// With Config.Positions, x.Slot's position weight is learned and predicted
// with (the serving offset stands in for an unknown slot); the prediction
// never includes the optimism bonus.
//
// Learn is called by the event consumer. It is safe for concurrent use; it
// serializes with other writers but never blocks Score. It does not
// allocate once its scratch buffers have grown.
func (m *Model) Learn(x *Context, it event.Item, l Label) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.learnPrep.prepare(x)
	return m.learnLocked(&m.learnPrep, &it, l, x.Slot)
}

// LearnPrepared is Learn for a request already hashed by Prepare, so that a
// caller holding a Prepared avoids hashing again. p is only read. It learns
// as Learn does with an unknown Context.Slot.
func (m *Model) LearnPrepared(p *Prepared, it event.Item, l Label) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.learnLocked(p, &it, l, 0)
}

func (m *Model) learnLocked(p *Prepared, it *event.Item, l Label, slot int) float64 {
	if l > Flip {
		return math.NaN()
	}
	m.active = m.appendActive(m.active[:0], p, it)
	m.weights = m.weights[:0]
	for _, i := range m.active {
		m.weights = append(m.weights, m.weight(uint64(i)))
	}
	lg := logit(m.weights, len(p.req))
	k := -1
	if m.cfg.Positions && slot > 0 {
		// The position's weight stands in for the serving offset.
		k = min(slot, maxSlot) - 1
		i := m.slots.coord[k]
		m.active = append(m.active, uint32(i))
		m.weights = append(m.weights, m.weight(i))
		lg += m.weight(i)
	} else if m.cfg.Positions {
		lg += m.slots.offset()
	}
	pred := sigmoid(lg)

	// The gradient of log loss with respect to the logit: p - y, the same
	// for every active (binary) feature. A Flip adds the gradient of
	// logloss(y=1) - logloss(y=0) = (p-1) - p = -1.
	var g float64
	switch l {
	case Negative:
		g = pred
	case Positive:
		g = pred - 1
	case Flip:
		g = -1
	}
	g2 := g * g
	for k, i := range m.active {
		c := &m.coords[i]
		z := math.Float64frombits(c.z.Load())
		n := math.Float64frombits(c.n.Load())
		sigma := (math.Sqrt(n+g2) - math.Sqrt(n)) / m.alpha
		m.setState(uint64(i), z+g-sigma*m.weights[k], n+g2)
	}

	if k >= 0 {
		m.slots.learned(k, m)
	}
	u := m.updates.Add(1)
	if u%m.cfg.VersionEvery == 0 {
		m.setVersion()
	}
	m.eval.observe(m.cfg.Now(), pred, l)
	return pred
}

// Eval returns the online (progressive validation) statistics of the
// predictions Learn made within the last EvalWindow. It is safe for
// concurrent use.
func (m *Model) Eval() EvalStats {
	return m.eval.stats(m.cfg.Now())
}

// CategoryLogits writes to out[i] the part of an item's logit that its
// category cats[i] brings for the request p was prepared from: the
// category's weight and its crosses with every request feature. Ranking
// categories by it ranks them as a scorer would rank two items of equal
// item weight. It is safe for concurrent use and does not allocate.
func (m *Model) CategoryLogits(p *Prepared, cats []string, out []float64) {
	_ = out[:len(cats)]
	for i, c := range cats {
		out[i] = m.categorySum(p, categoryHash(c))
	}
}
