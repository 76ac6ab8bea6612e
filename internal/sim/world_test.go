package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// defaultWorld is shared by the read-only tests: building it takes ~50ms.
var defaultWorld = sync.OnceValue(func() *World { return NewWorld(WorldConfig{Seed: 1}) })

func TestNewWorldDeterministic(t *testing.T) {
	cfg := WorldConfig{Seed: 42, Users: 3000, Items: 800}
	a, b := NewWorld(cfg), NewWorld(cfg)
	if diff := cmp.Diff(a.Users(), b.Users()); diff != "" {
		t.Errorf("NewWorld(%+v) users differ between calls (-a +b):\n%s", cfg, diff)
	}
	if diff := cmp.Diff(a.Items(), b.Items()); diff != "" {
		t.Errorf("NewWorld(%+v) items differ between calls (-a +b):\n%s", cfg, diff)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		u, it, ch := r.IntN(cfg.Users), r.IntN(cfg.Items), Channels[r.IntN(len(Channels))]
		pa := a.ClickProb(a.User(u), a.Item(it), ch)
		pb := b.ClickProb(b.User(u), b.Item(it), ch)
		if pa != pb {
			t.Fatalf("ClickProb(%d, %d, %q) = %v and %v for the same seed", u, it, ch, pa, pb)
		}
	}
	ra, rb := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for range 100 {
		if ua, ub := a.PickUser(ra), b.PickUser(rb); ua != ub {
			t.Fatalf("PickUser() = %d and %d for the same seeds", ua, ub)
		}
	}

	other := NewWorld(WorldConfig{Seed: 43, Users: 3000, Items: 800})
	if cmp.Equal(a.Users(), other.Users()) && cmp.Equal(a.Items(), other.Items()) {
		t.Errorf("NewWorld(seed 42) and NewWorld(seed 43) are equal, want different worlds")
	}
}

func TestNewWorldDefaults(t *testing.T) {
	w := defaultWorld()
	if got, want := len(w.Users()), 100_000; got != want {
		t.Errorf("len(Users()) = %d, want %d", got, want)
	}
	if got, want := len(w.Items()), 10_000; got != want {
		t.Errorf("len(Items()) = %d, want %d", got, want)
	}
	if got, want := w.Categories(), 24; got != want {
		t.Errorf("Categories() = %d, want %d", got, want)
	}
	userRE := regexp.MustCompile(`^u\d{6}$`)
	itemRE := regexp.MustCompile(`^i\d{5}$`)
	counts := map[string]int{}
	for i, u := range w.Users() {
		if !userRE.MatchString(u.ID) || u.ID != UserID(i) {
			t.Fatalf("User(%d).ID = %q, want %q", i, u.ID, UserID(i))
		}
		for name, vals := range map[string][]string{u.AgeBucket: AgeBuckets, u.Segment: Segments, u.Region: Regions, u.Device: Devices} {
			if !slices.Contains(vals, name) {
				t.Fatalf("User(%d) has attribute %q, want one of %v", i, name, vals)
			}
		}
		counts[u.Segment]++
		counts[u.AgeBucket]++
	}
	if got := float64(counts["new"]) / 100_000; math.Abs(got-0.15) > 0.01 {
		t.Errorf("share of segment new = %.3f, want 0.15±0.01", got)
	}
	for _, a := range AgeBuckets {
		if counts[a] < 10_000 {
			t.Errorf("users in age bucket %q = %d, want ≥ 10000", a, counts[a])
		}
	}
	cats := map[string]int{}
	for i, it := range w.Items() {
		if !itemRE.MatchString(it.ID) || it.ID != ItemID(i) || !it.Available {
			t.Fatalf("Item(%d) = %+v, want id %q and available", i, it, ItemID(i))
		}
		cats[it.Category]++
	}
	for c := range 24 {
		if n := cats[CategoryID(c)]; n < 300 {
			t.Errorf("items in category %s = %d, want ≥ 300", CategoryID(c), n)
		}
	}

	none := NewWorld(WorldConfig{Users: 500, Items: 100, NewUserShare: -1})
	for _, u := range none.Users() {
		if u.Segment == "new" {
			t.Fatalf("NewWorld(NewUserShare: -1) has a new user, want none")
		}
	}
}

// sampleCase is a (user, channel) draw as the traffic generator makes it.
type sampleCase struct {
	u  *event.User
	ch string
}

func sampleCases(w *World, n int, seed uint64) []sampleCase {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]sampleCase, n)
	for i := range out {
		ui := w.PickUser(r)
		out[i] = sampleCase{w.User(ui), w.PickChannel(r, ui)}
	}
	return out
}

// meanProb is the mean ClickProb (no position bias) of items for c.
func meanProb(w *World, c sampleCase, items []int) float64 {
	s := 0.0
	for _, i := range items {
		s += w.ClickProb(c.u, w.Item(i), c.ch)
	}
	return s / float64(len(items))
}

func TestCalibration(t *testing.T) {
	w := defaultWorld()
	r := rand.New(rand.NewPCG(3, 3))
	cases := sampleCases(w, 4000, 2)
	var random, top10, top1 float64
	for _, c := range cases {
		random += w.ClickProb(c.u, w.Item(r.IntN(len(w.Items()))), c.ch)
		best := w.Oracle(c.u, c.ch, 10)
		top10 += meanProb(w, c, best)
		top1 += w.ClickProb(c.u, w.Item(best[0]), c.ch)
	}
	n := float64(len(cases))
	random, top10, top1 = random/n, top10/n, top1/n
	t.Logf("CTR: random item %.4f, ground-truth top-10 %.4f, top-1 %.4f", random, top10, top1)
	if random < 0.01 || random > 0.04 {
		t.Errorf("mean ClickProb of random items = %.4f, want 0.01..0.04", random)
	}
	if top10 < 5*random {
		t.Errorf("mean ClickProb of ground-truth top-10 = %.4f, want ≥ 5× random (%.4f)", top10, 5*random)
	}
	if top1 < 0.12 || top1 > 0.30 {
		t.Errorf("mean ClickProb of the best-matched item = %.4f, want 0.12..0.30", top1)
	}
}

// TestOracle checks Oracle against a brute-force ranking.
func TestOracle(t *testing.T) {
	w := NewWorld(WorldConfig{Seed: 5, Users: 200, Items: 500})
	for _, c := range sampleCases(w, 20, 9) {
		idx := make([]int, len(w.Items()))
		for i := range idx {
			idx[i] = i
		}
		p := func(i int) float64 { return w.ClickProb(c.u, w.Item(i), c.ch) }
		slices.SortStableFunc(idx, func(a, b int) int { return cmpFloat(p(b), p(a)) })
		got := w.Oracle(c.u, c.ch, 10)
		for k := range got {
			if p(got[k]) != p(idx[k]) {
				t.Fatalf("Oracle(%s, %q, 10)[%d] has ClickProb %v, want %v", c.u.ID, c.ch, k, p(got[k]), p(idx[k]))
			}
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestLearnableStructure checks that personalization pays: the per-user
// ground-truth top-10 beats the globally most popular top-10 by 2×, and
// that hiding the age bucket from the ranker visibly hurts.
func TestLearnableStructure(t *testing.T) {
	w := defaultWorld()
	// Popularity, global and per segment (the engine's control falls back
	// to the segment's list): mean ground truth per item over traffic.
	pop := make([]float64, len(w.Items()))
	segPop := make([][]float64, len(Segments))
	for s := range segPop {
		segPop[s] = make([]float64, len(w.Items()))
	}
	for _, c := range sampleCases(w, 400, 4) {
		a, ch := attrsOf(c.u), channelIndex(c.ch)
		for i := range pop {
			p := sigmoid(w.base + w.logit(a, ch, i))
			pop[i] += p
			segPop[a[dimSegment]][i] += p
		}
	}
	top10 := func(score []float64) []int {
		idx := make([]int, len(score))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmpFloat(score[b], score[a]) })
		return idx[:10]
	}
	popular := top10(pop)
	segPopular := make([][]int, len(Segments))
	for s := range segPop {
		segPopular[s] = top10(segPop[s])
	}

	var oracle, popCTR, segCTR, noAge float64
	cases := sampleCases(w, 4000, 5)
	for _, c := range cases {
		oracle += w.ListCTR(c.u, c.ch, w.Oracle(c.u, c.ch, 10))
		popCTR += w.ListCTR(c.u, c.ch, popular)
		segCTR += w.ListCTR(c.u, c.ch, segPopular[attrsOf(c.u)[dimSegment]])
		blind := *c.u
		blind.AgeBucket = ""
		noAge += w.ListCTR(c.u, c.ch, w.Oracle(&blind, c.ch, 10))
	}
	n := float64(len(cases))
	oracle, popCTR, segCTR, noAge = oracle/n, popCTR/n, segCTR/n, noAge/n
	t.Logf("CTR with position bias: oracle %.4f, popular %.4f, popular in segment %.4f, oracle without age %.4f",
		oracle, popCTR, segCTR, noAge)
	if oracle < 2*popCTR {
		t.Errorf("oracle top-10 CTR = %.4f, want ≥ 2× popular top-10 (%.4f)", oracle, 2*popCTR)
	}
	if oracle < 2*segCTR {
		t.Errorf("oracle top-10 CTR = %.4f, want ≥ 2× the segment's popular top-10 (%.4f)", oracle, 2*segCTR)
	}
	if noAge > 0.7*oracle {
		t.Errorf("oracle CTR without the age bucket = %.4f, want ≤ 0.7× with it (%.4f)", noAge, 0.7*oracle)
	}
}

func TestClickProb(t *testing.T) {
	w := defaultWorld()
	u := w.User(0)
	it := w.Item(0)
	known := w.ClickProb(u, it, "web")
	tests := []struct {
		name string
		u    event.User
		it   event.Item
		ch   string
		want func(p float64) bool
		desc string
	}{
		{"known", *u, *it, "web", func(p float64) bool { return p == known }, "the same value again"},
		{"unknown category", *u, event.Item{ID: it.ID, Category: "c99"}, "web", func(p float64) bool { return p == 0 }, "0"},
		{"malformed category", *u, event.Item{ID: it.ID, Category: "c3"}, "web", func(p float64) bool { return p == 0 }, "0"},
		{"unknown item id", *u, event.Item{ID: "nope", Category: it.Category}, "web", func(p float64) bool { return p > 0 && p < 1 }, "in (0,1)"},
		{"unknown channel", *u, *it, "fax", func(p float64) bool { return p > 0 && p < 1 }, "in (0,1)"},
		{"null attributes", event.User{ID: "x"}, *it, "", func(p float64) bool { return p > 0 && p < 1 }, "in (0,1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.ClickProb(&tt.u, &tt.it, tt.ch); !tt.want(got) {
				t.Errorf("ClickProb(%+v, %+v, %q) = %v, want %s", tt.u, tt.it, tt.ch, got, tt.desc)
			}
		})
	}
}

func TestPositionBias(t *testing.T) {
	tests := []struct {
		k    int
		want float64
	}{{0, 1}, {1, 1 / math.Log2(3)}, {2, 0.5}, {6, 1.0 / 3}, {9, 1 / math.Log2(11)}}
	for _, tt := range tests {
		if got := PositionBias(tt.k); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("PositionBias(%d) = %v, want %v", tt.k, got, tt.want)
		}
	}
}

func TestPickUserSkew(t *testing.T) {
	w := defaultWorld()
	r := rand.New(rand.NewPCG(11, 11))
	hits := make([]int, len(w.Users()))
	const draws = 200_000
	perSeg := map[string]int{}
	for range draws {
		i := w.PickUser(r)
		hits[i]++
		perSeg[w.User(i).Segment]++
	}
	slices.Sort(hits)
	slices.Reverse(hits)
	top := 0
	for _, h := range hits[:len(hits)/100] {
		top += h
	}
	if share := float64(top) / draws; share < 0.05 {
		t.Errorf("share of requests from the most active 1%% of users = %.3f, want ≥ 0.05", share)
	}
	segUsers := map[string]int{}
	for _, u := range w.Users() {
		segUsers[u.Segment]++
	}
	rate := func(s string) float64 { return float64(perSeg[s]) / float64(segUsers[s]) }
	if rate("power") < 3*rate("new") {
		t.Errorf("requests per power user = %.2f, want ≥ 3× per new user (%.2f)", rate("power"), rate("new"))
	}
}

func TestWriteNDJSON(t *testing.T) {
	w := NewWorld(WorldConfig{Seed: 8, Users: 1500, Items: 400})
	var users, items bytes.Buffer
	if err := w.WriteUsersNDJSON(&users); err != nil {
		t.Fatalf("WriteUsersNDJSON() = %v", err)
	}
	if err := w.WriteItemsNDJSON(&items); err != nil {
		t.Fatalf("WriteItemsNDJSON() = %v", err)
	}
	gotUsers := decodeLines[event.User](t, users.Bytes(), func(u *event.User) error { return u.Validate() })
	if diff := cmp.Diff(w.Users(), gotUsers); diff != "" {
		t.Errorf("decoded users differ from Users() (-want +got):\n%s", diff)
	}
	gotItems := decodeLines[event.Item](t, items.Bytes(), func(it *event.Item) error { return it.Validate() })
	if diff := cmp.Diff(w.Items(), gotItems); diff != "" {
		t.Errorf("decoded items differ from Items() (-want +got):\n%s", diff)
	}
}

// decodeLines strictly decodes each NDJSON line into a T and validates it.
func decodeLines[T any](t *testing.T, b []byte, validate func(*T) error) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %d: Decode(%s) = %v", line, sc.Bytes(), err)
		}
		if dec.More() {
			t.Fatalf("line %d: more than one value on the line", line)
		}
		if err := validate(&v); err != nil {
			t.Fatalf("line %d: Validate(%s) = %v", line, sc.Bytes(), err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scan ndjson: %v", err)
	}
	return out
}

func FuzzClickProb(f *testing.F) {
	w := NewWorld(WorldConfig{Seed: 2, Users: 50, Items: 100})
	f.Add("u000001", "25-34", "power", "eu", "ios", "i00007", "c03", "ios")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("x", "55+", "new", "latam", "web", "zz", "c-1", "email")
	f.Add("x", "18-24", "casual", "na", "android", "i00001", "c0003", "web")
	f.Fuzz(func(t *testing.T, uid, age, seg, region, device, iid, cat, ch string) {
		u := event.User{ID: uid, AgeBucket: age, Segment: seg, Region: region, Device: device}
		it := event.Item{ID: iid, Category: cat}
		p := w.ClickProb(&u, &it, ch)
		if math.IsNaN(p) || p < 0 || p > 1 {
			t.Fatalf("ClickProb(%+v, %+v, %q) = %v, want within [0,1]", u, it, ch, p)
		}
		if _, ok := w.categoryIndex(cat); !ok && p != 0 {
			t.Fatalf("ClickProb(category %q) = %v, want 0 for an unknown category", cat, p)
		}
	})
}

func BenchmarkClickProb(b *testing.B) {
	w := defaultWorld()
	u, it := w.User(17), w.Item(42)
	b.ReportAllocs()
	for b.Loop() {
		w.ClickProb(u, it, "ios")
	}
}

func BenchmarkOracle(b *testing.B) {
	w := defaultWorld()
	u := w.User(17)
	b.ReportAllocs()
	for b.Loop() {
		w.Oracle(u, "ios", 10)
	}
}

func BenchmarkNewWorld(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewWorld(WorldConfig{Seed: 1})
	}
}
