package model

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

func newTestModel(t testing.TB, cfg Config) *Model {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) error = %v", cfg, err)
	}
	return m
}

func testContext() Context {
	return Context{
		User:             event.User{ID: "u1", AgeBucket: "25-34", Segment: "sports_fan", Region: "eu", Device: "ios"},
		Channel:          "app",
		Hour:             21,
		RecentCategories: []string{"sports", "news"},
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero is defaults", Config{}, false},
		{"explicit", Config{Bits: 12, Alpha: 0.05, Beta: 2, L1: 0.5, L2: 3, Name: "ftrl-b", VersionEvery: 10, EvalWindow: time.Minute}, false},
		{"no regularization", Config{Bits: 8, L1: -1, L2: -1}, false},
		{"bits too small", Config{Bits: MinBits - 1}, true},
		{"bits too large", Config{Bits: MaxBits + 1}, true},
		{"negative bits", Config{Bits: -3}, true},
		{"negative alpha", Config{Alpha: -0.1}, true},
		{"nan alpha", Config{Alpha: math.NaN()}, true},
		{"inf beta", Config{Beta: math.Inf(1)}, true},
		{"nan l1", Config{L1: math.NaN()}, true},
		{"inf l2", Config{L2: math.Inf(-1)}, true},
		{"name with space", Config{Name: "my model"}, true},
		{"name too long", Config{Name: string(make([]byte, 65))}, true},
		{"window too short", Config{EvalWindow: time.Millisecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New(%+v) error = %v, want errors.Is ErrInvalidConfig", tt.cfg, err)
			}
			if err == nil && m == nil {
				t.Errorf("New(%+v) = nil, nil", tt.cfg)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	m := newTestModel(t, Config{})
	if got, want := len(m.coords), 1<<DefaultBits; got != want {
		t.Errorf("len(coords) = %d, want %d", got, want)
	}
	if got, want := m.Version(), "ftrl-v0.0"; got != want {
		t.Errorf("Version() = %q, want %q", got, want)
	}
	if got := m.Eval().Window; got != DefaultEvalWindow {
		t.Errorf("Eval().Window = %v, want %v", got, DefaultEvalWindow)
	}
	// An untrained model predicts exactly 1/2.
	var p Prepared
	x := testContext()
	m.Prepare(&x, &p)
	out := []float64{-1}
	m.Score(&p, []event.Item{{ID: "i1", Category: "sports"}}, out)
	if out[0] != 0.5 {
		t.Errorf("untrained Score = %v, want 0.5", out[0])
	}
}

// TestFNV checks the inline hash against the standard library's FNV-1a:
// coordinates must be the same in every process for snapshots to load.
func TestFNV(t *testing.T) {
	for _, s := range []string{"", "a", "user_segment=sports_fan", "category=ünïcode", string([]byte{0, 255, 7})} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnvString(fnvOffset, s), h.Sum64(); got != want {
			t.Errorf("fnvString(%q) = %#x, want %#x", s, got, want)
		}
	}
	// Golden coordinates: a change here makes every stored snapshot
	// meaningless, so it must come with a new snapshot format version.
	golden := []struct {
		name      string
		got, want uint64
	}{
		{"bias", biasIndex(), 0xa1261a3f4bada8d0},
		{"item=i1", index(itemHash("i1")), 0x328e9649c25f12c},
		{"user_segment=fan x category=sports", cross(attrHash("user_segment=", "fan"), categoryHash("sports")), 0x189c289f26f2593},
	}
	for _, g := range golden {
		if g.got != g.want {
			t.Errorf("coordinate of %s = %#x, want %#x", g.name, g.got, g.want)
		}
	}
}

func TestPrepare(t *testing.T) {
	m := newTestModel(t, Config{Bits: 10})
	tests := []struct {
		name string
		x    Context
		want int
	}{
		{"all present", testContext(), 4 + 1 + 1 + 2},
		{"null attributes omitted", Context{User: event.User{Segment: "s"}, Hour: 3}, 1 + 1},
		{"hour out of range is null", Context{Hour: 24, Channel: "web"}, 1},
		{"negative hour is null", Context{Hour: -1}, 0},
		{"recent empty and repeated dropped", Context{Hour: -1, RecentCategories: []string{"a", "", "b", "a", "b"}}, 2},
	}
	var p Prepared
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.Prepare(&tt.x, &p)
			if got := p.Len(); got != tt.want {
				t.Errorf("Prepare(%+v).Len() = %d, want %d", tt.x, got, tt.want)
			}
		})
	}
	t.Run("recent bounded", func(t *testing.T) {
		x := Context{Hour: -1}
		for i := range 3 * MaxRecentCategories {
			x.RecentCategories = append(x.RecentCategories, strconv.Itoa(i))
		}
		m.Prepare(&x, &p)
		if got := p.Len(); got != MaxRecentCategories {
			t.Errorf("Prepare(%d recent).Len() = %d, want %d", len(x.RecentCategories), got, MaxRecentCategories)
		}
	})
	t.Run("hour buckets", func(t *testing.T) {
		var a, b, c Prepared
		m.Prepare(&Context{Hour: 20}, &a)
		m.Prepare(&Context{Hour: 23}, &b)
		m.Prepare(&Context{Hour: 19}, &c)
		if a.req[0] != b.req[0] {
			t.Errorf("hours 20 and 23 hash differently, want one bucket")
		}
		if a.req[0] == c.req[0] {
			t.Errorf("hours 19 and 20 hash alike, want different buckets")
		}
	})
	t.Run("same value in different attributes differs", func(t *testing.T) {
		var a, b Prepared
		m.Prepare(&Context{Hour: -1, User: event.User{Segment: "x"}}, &a)
		m.Prepare(&Context{Hour: -1, User: event.User{Region: "x"}}, &b)
		if a.req[0] == b.req[0] {
			t.Errorf("segment=x and region=x hash alike")
		}
	})
}

// TestLearnReturnsScore checks that Learn's progressive prediction is what
// Score says before the update, and that the update moves it the right way.
func TestLearnReturnsScore(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16, L1: -1})
	x := testContext()
	it := event.Item{ID: "i1", Category: "sports"}
	var p Prepared
	out := make([]float64, 1)
	for i, l := range []Label{Positive, Positive, Negative, Positive, Negative, Negative, Negative} {
		m.Prepare(&x, &p)
		m.Score(&p, []event.Item{it}, out)
		before := out[0]
		got := m.Learn(&x, it, l)
		if got != before {
			t.Errorf("step %d: Learn(%v) = %v, want Score before = %v", i, l, got, before)
		}
		m.Score(&p, []event.Item{it}, out)
		if l == Positive && !(out[0] > before) || l == Negative && !(out[0] < before) {
			t.Errorf("step %d: Learn(%v) moved Score from %v to %v", i, l, before, out[0])
		}
	}
	if got, want := m.Updates(), uint64(7); got != want {
		t.Errorf("Updates() = %d, want %d", got, want)
	}
	if got := m.Learn(&x, it, Label(9)); !math.IsNaN(got) {
		t.Errorf("Learn(Label(9)) = %v, want NaN", got)
	}
	if got, want := m.Updates(), uint64(7); got != want {
		t.Errorf("Updates() after invalid label = %d, want %d", got, want)
	}
}

func TestLearnPreparedMatchesLearn(t *testing.T) {
	a := newTestModel(t, Config{Bits: 12})
	b := newTestModel(t, Config{Bits: 12})
	w := newWorld(7)
	var p Prepared
	for i := range 2000 {
		x, it, pt := w.example()
		l := Negative
		if w.rng.Float64() < pt*4 {
			l = Positive
		}
		b.Prepare(&x, &p)
		if ga, gb := a.Learn(&x, it, l), b.LearnPrepared(&p, it, l); ga != gb {
			t.Fatalf("example %d: Learn = %v, LearnPrepared = %v, want equal", i, ga, gb)
		}
	}
}

func TestScoreUsesCrosses(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16})
	fan := Context{User: event.User{Segment: "fan"}, Hour: -1}
	other := Context{User: event.User{Segment: "other"}, Hour: -1}
	sports := event.Item{ID: "s", Category: "sports"}
	news := event.Item{ID: "n", Category: "news"}
	for range 300 {
		m.Learn(&fan, sports, Positive)
		m.Learn(&fan, news, Negative)
		m.Learn(&other, sports, Negative)
		m.Learn(&other, news, Positive)
	}
	var p Prepared
	out := make([]float64, 2)
	items := []event.Item{sports, news}
	m.Prepare(&fan, &p)
	m.Score(&p, items, out)
	if !(out[0] > 0.8 && out[1] < 0.2) {
		t.Errorf("Score(fan, [sports news]) = %v, want sports high, news low", out)
	}
	m.Prepare(&other, &p)
	m.Score(&p, items, out)
	if !(out[0] < 0.2 && out[1] > 0.8) {
		t.Errorf("Score(other, [sports news]) = %v, want sports low, news high", out)
	}
}

func TestFlip(t *testing.T) {
	x := testContext()
	it := event.Item{ID: "i1", Category: "sports"}
	var p Prepared
	out := make([]float64, 1)
	score := func(m *Model) float64 {
		m.Prepare(&x, &p)
		m.Score(&p, []event.Item{it}, out)
		return out[0]
	}

	t.Run("z equals a single positive", func(t *testing.T) {
		// With the default L1 every weight stays zero over one or two
		// updates, so Negative+Flip and Positive accumulate the same z;
		// only n differs (p² + 1 against (1-p)²).
		pair, pos := newTestModel(t, Config{Bits: 12}), newTestModel(t, Config{Bits: 12})
		pair.Learn(&x, it, Negative)
		pair.Learn(&x, it, Flip)
		pos.Learn(&x, it, Positive)
		pair.Prepare(&x, &p)
		for _, i := range pair.appendActive(nil, &p, &it) {
			zp := math.Float64frombits(pair.coords[i].z.Load())
			zq := math.Float64frombits(pos.coords[i].z.Load())
			if math.Abs(zp-zq) > 1e-9 {
				t.Errorf("coordinate %d: z after Negative+Flip = %v, after Positive = %v", i, zp, zq)
			}
		}
	})

	t.Run("pair moves prediction up like a positive", func(t *testing.T) {
		pair, pos := newTestModel(t, Config{Bits: 12, L1: -1}), newTestModel(t, Config{Bits: 12, L1: -1})
		start := score(pair)
		pair.Learn(&x, it, Negative)
		afterNeg := score(pair)
		pair.Learn(&x, it, Flip)
		afterPair := score(pair)
		pos.Learn(&x, it, Positive)
		afterPos := score(pos)
		if !(afterNeg < start) {
			t.Errorf("Score after Negative = %v, want below %v", afterNeg, start)
		}
		if !(afterPair > start) || !(afterPos > start) {
			t.Errorf("Score after Negative+Flip = %v, after Positive = %v, want both above %v", afterPair, afterPos, start)
		}
		// Per coordinate the pair pushes each weight the way a positive
		// does, by less: its n holds p² + 1 against (1-p)², which slows
		// the FTRL learning rate.
		pair.Prepare(&x, &p)
		for _, i := range pair.appendActive(nil, &p, &it) {
			wp, wq := pair.weight(uint64(i)), pos.weight(uint64(i))
			if !(wp > 0 && wq > 0 && wp <= wq) {
				t.Errorf("coordinate %d: weight after Negative+Flip = %v, after Positive = %v, want 0 < pair <= positive", i, wp, wq)
			}
		}
	})

	t.Run("eval counts one positive example", func(t *testing.T) {
		m := newTestModel(t, Config{Bits: 12})
		m.Learn(&x, it, Negative)
		pf := m.Learn(&x, it, Flip)
		got := m.Eval()
		want := EvalStats{Window: DefaultEvalWindow, Count: 1, LogLoss: -math.Log(pf), MeanPredicted: 0.5, ObservedCTR: 1}
		if diff := cmp.Diff(want, got, cmp.Comparer(approx)); diff != "" {
			t.Errorf("Eval() after Negative+Flip mismatch (-want +got):\n%s", diff)
		}
	})
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) }

func TestVersion(t *testing.T) {
	m := newTestModel(t, Config{Bits: 8, Name: "exp", VersionEvery: 3})
	x := testContext()
	it := event.Item{ID: "i", Category: "c"}
	var got []string
	for range 7 {
		m.Learn(&x, it, Negative)
		got = append(got, m.Version())
	}
	want := []string{"exp-v0.0", "exp-v0.0", "exp-v0.1", "exp-v0.1", "exp-v0.1", "exp-v0.2", "exp-v0.2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Version() after each update mismatch (-want +got):\n%s", diff)
	}
}

// TestConcurrentScoreLearn runs Score on several goroutines while Learn
// updates; under -race it checks that the lock-free reads are data-race
// free, and that every score stays a probability.
func TestConcurrentScoreLearn(t *testing.T) {
	m := newTestModel(t, Config{Bits: 12})
	w := newWorld(3)
	items := w.items[:200]
	type example struct {
		x  Context
		it event.Item
	}
	var examples [2][]example
	for g := range examples {
		for range 3000 {
			x, it, _ := w.example()
			examples[g] = append(examples[g], example{x, it})
		}
	}
	stop := make(chan struct{})
	var readers, writers sync.WaitGroup
	for g := range 3 {
		x := Context{User: w.users[g], Channel: "web", Hour: g, RecentCategories: []string{"cat1"}}
		readers.Go(func() {
			var p Prepared
			out := make([]float64, len(items))
			for {
				select {
				case <-stop:
					return
				default:
				}
				m.Prepare(&x, &p)
				m.Score(&p, items, out)
				for i, s := range out {
					if !(s > 0 && s < 1) {
						t.Errorf("Score item %d = %v, want in (0, 1)", i, s)
						return
					}
				}
				_ = m.Version()
				_ = m.Eval()
			}
		})
	}
	for g := range examples {
		writers.Go(func() {
			for i, e := range examples[g] {
				m.Learn(&e.x, e.it, Label((i+g)%3))
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	if got := m.Updates(); got != 6000 {
		t.Errorf("Updates() = %d, want 6000", got)
	}
}

// TestCachedWeights checks that the weight Score reads for every coordinate
// is the FTRL weight of the coordinate's z and n, after training on a model
// small enough that one example's features collide, and after a snapshot
// restore.
func TestCachedWeights(t *testing.T) {
	m, _ := trainedModel(t, Config{Bits: 6, L1: 0.05}, 3000)
	restored, _, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, m, SnapshotMeta{})), Config{})
	if err != nil {
		t.Fatalf("ReadSnapshot() error = %v", err)
	}
	for name, mm := range map[string]*Model{"trained": m, "restored": restored} {
		nonzero := 0
		for i := range mm.coords {
			z := math.Float64frombits(mm.coords[i].z.Load())
			n := math.Float64frombits(mm.coords[i].n.Load())
			want := 0.0
			if math.Abs(z) > mm.l1 {
				want = -(z - math.Copysign(mm.l1, z)) / ((mm.beta+math.Sqrt(n))/mm.alpha + mm.l2)
			}
			if got := mm.weight(uint64(i)); math.Float64bits(got) != math.Float64bits(want) {
				t.Errorf("%s: weight(%d) = %v, want %v from z=%v n=%v", name, i, got, want, z, n)
			}
			if want != 0 {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Errorf("%s: every weight is zero; the test checks nothing", name)
		}
	}
}

func TestLogitsAreScoreBeforeSigmoid(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16, L1: -1})
	x := testContext()
	items := []event.Item{{ID: "i1", Category: "sports"}, {ID: "i2", Category: "news"}, {ID: "i3"}}
	for i, l := range []Label{Positive, Negative, Positive} {
		m.Learn(&x, items[i], l)
	}
	var p Prepared
	m.Prepare(&x, &p)
	probs, logits := make([]float64, 3), make([]float64, 3)
	m.Score(&p, items, probs)
	m.Logits(&p, items, logits)
	for i := range items {
		if got := Sigmoid(logits[i]); got != probs[i] {
			t.Errorf("Sigmoid(Logits(%s)) = %v, want Score = %v", items[i].ID, got, probs[i])
		}
	}
	if !(logits[0] > logits[1]) || !(probs[0] > probs[1]) {
		t.Errorf("logits %v and probabilities %v disagree on the order", logits, probs)
	}
}

// TestLogitsCategoryRuns: Logits caches per-category sums within a call
// and works in chunks of coordinates; every item's logit among many must
// be its own alone, whether its category repeats, changes, comes back or
// is missing, and past a chunk boundary.
func TestLogitsCategoryRuns(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16, L1: -1})
	x := testContext()
	cats := []string{"sports", "news", "", "music", "sport"}
	var items []event.Item
	for i := range 300 {
		c := cats[(i/7+i%3)%len(cats)] // runs of several, interleaved
		items = append(items, event.Item{ID: fmt.Sprintf("i%d", i), Category: c})
	}
	for i, it := range items {
		m.Learn(&x, it, Label(i%2))
	}
	var p Prepared
	m.Prepare(&x, &p)
	all := make([]float64, len(items))
	m.Logits(&p, items, all)
	one := make([]float64, 1)
	for i := range items {
		m.Logits(&p, items[i:i+1], one)
		if all[i] != one[0] {
			t.Fatalf("Logits of %s (%q) among all = %v, alone = %v", items[i].ID, items[i].Category, all[i], one[0])
		}
	}
}

// TestLogitsItemKeys: scoring from the items' keys (Context.ItemKeys)
// gives exactly the logits of hashing the items, null categories
// included; keys that are not one per item are ignored.
func TestLogitsItemKeys(t *testing.T) {
	m := newTestModel(t, Config{Bits: 16, L1: -1})
	x := testContext()
	cats := []string{"sports", "news", "", "music"}
	var items []event.Item
	for i := range 150 {
		items = append(items, event.Item{ID: fmt.Sprintf("i%d", i), Category: cats[i%len(cats)]})
	}
	for i, it := range items {
		m.Learn(&x, it, Label(i%2))
	}
	keys := make([]ItemKey, len(items))
	for i, it := range items {
		keys[i] = KeyOf(it)
	}
	var p Prepared
	m.Prepare(&x, &p)
	want := make([]float64, len(items))
	m.Logits(&p, items, want)
	kx := x
	kx.ItemKeys = keys
	m.Prepare(&kx, &p)
	got := make([]float64, len(items))
	m.Logits(&p, items, got)
	for i := range items {
		if got[i] != want[i] {
			t.Fatalf("logit of %s (%q) from its key = %v, hashed = %v", items[i].ID, items[i].Category, got[i], want[i])
		}
	}
	// One key short of the items: ignored, the items are hashed.
	kx.ItemKeys = keys[1:]
	m.Prepare(&kx, &p)
	clear(got)
	m.Logits(&p, items, got)
	for i := range items {
		if got[i] != want[i] {
			t.Fatalf("logit of %s with keys of the wrong length = %v, want the hashed %v", items[i].ID, got[i], want[i])
		}
	}
}

// TestIDHash checks that IDHash is the id part of an item's key, whatever
// its category, and tells ids apart.
func TestIDHash(t *testing.T) {
	seen := map[uint64]string{}
	for i := range 10000 {
		id := fmt.Sprintf("item-%d", i)
		h := IDHash(id)
		for _, cat := range []string{"", "books", "games"} {
			if got := KeyOf(event.Item{ID: id, Category: cat}).IDHash(); got != h {
				t.Fatalf("KeyOf(%q, %q).IDHash() = %#x, IDHash(%q) = %#x", id, cat, got, id, h)
			}
		}
		if o, dup := seen[h]; dup {
			t.Fatalf("IDHash(%q) = IDHash(%q) = %#x", id, o, h)
		}
		seen[h] = id
	}
}

// TestCategoryHash checks that CategoryHash is the category part of an
// item's key, 0 for no category.
func TestCategoryHash(t *testing.T) {
	for _, c := range []string{"", "books", "games", "category=books"} {
		if got, want := KeyOf(event.Item{ID: "x", Category: c}).CategoryHash(), CategoryHash(c); got != want {
			t.Errorf("KeyOf(category %q).CategoryHash() = %#x, CategoryHash = %#x", c, got, want)
		}
	}
	if h := CategoryHash(""); h != 0 {
		t.Errorf("CategoryHash(\"\") = %#x, want 0", h)
	}
	if CategoryHash("books") == CategoryHash("games") {
		t.Error("CategoryHash(books) = CategoryHash(games)")
	}
}
