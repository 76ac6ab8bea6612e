package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/sightline/sightline/internal/event"
)

// world is a synthetic recommendation problem with known structure: the
// click probability is a logistic function of user attribute × category
// affinities, channel × category and hour × category effects, an affinity
// for recently engaged categories and a per-item quality.
type world struct {
	rng        *rand.Rand
	attrs      [4][]string // values per user attribute
	aff        [4][][]float64
	channels   []string
	chanAff    [][]float64
	categories []string
	items      []event.Item
	quality    []float64
	catOf      []int
	users      []event.User
	userVals   [][4]int // -1 for null
	recentAff  float64
	base       float64
}

func newWorld(seed uint64) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	sizes := [4]int{6, 4, 8, 3}
	names := [4]string{"age", "seg", "reg", "dev"}
	for c := range 12 {
		w.categories = append(w.categories, "cat"+strconv.Itoa(c))
	}
	for a := range 4 {
		for v := range sizes[a] {
			w.attrs[a] = append(w.attrs[a], names[a]+strconv.Itoa(v))
			row := make([]float64, len(w.categories))
			for c := range row {
				row[c] = w.rng.NormFloat64() * 0.8
			}
			w.aff[a] = append(w.aff[a], row)
		}
	}
	w.channels = []string{"web", "app", "email"}
	for range w.channels {
		row := make([]float64, len(w.categories))
		for c := range row {
			row[c] = w.rng.NormFloat64() * 0.3
		}
		w.chanAff = append(w.chanAff, row)
	}
	for i := range 600 {
		c := w.rng.IntN(len(w.categories))
		w.items = append(w.items, event.Item{ID: "item" + strconv.Itoa(i), Category: w.categories[c], Available: true})
		w.catOf = append(w.catOf, c)
		w.quality = append(w.quality, w.rng.NormFloat64()*0.4)
	}
	for u := range 5000 {
		var vals [4]int
		var user event.User
		user.ID = "user" + strconv.Itoa(u)
		for a := range 4 {
			vals[a] = w.rng.IntN(sizes[a])
			if w.rng.Float64() < 0.1 {
				vals[a] = -1 // null attribute
			}
		}
		if vals[0] >= 0 {
			user.AgeBucket = w.attrs[0][vals[0]]
		}
		if vals[1] >= 0 {
			user.Segment = w.attrs[1][vals[1]]
		}
		if vals[2] >= 0 {
			user.Region = w.attrs[2][vals[2]]
		}
		if vals[3] >= 0 {
			user.Device = w.attrs[3][vals[3]]
		}
		w.users = append(w.users, user)
		w.userVals = append(w.userVals, vals)
	}
	w.recentAff = 0.8
	w.base = -4.0
	return w
}

// example draws one (context, item) pair and its true click probability.
func (w *world) example() (Context, event.Item, float64) {
	u := w.rng.IntN(len(w.users))
	ch := w.rng.IntN(len(w.channels))
	it := w.rng.IntN(len(w.items))
	c := w.catOf[it]
	x := Context{User: w.users[u], Channel: w.channels[ch], Hour: w.rng.IntN(24)}
	logit := w.base + w.quality[it] + w.chanAff[ch][c]
	for a, v := range w.userVals[u] {
		if v >= 0 {
			logit += w.aff[a][v][c]
		}
	}
	if w.rng.Float64() < 0.5 {
		rc := w.rng.IntN(len(w.categories))
		x.RecentCategories = []string{w.categories[rc]}
		if rc == c {
			logit += w.recentAff
		}
	}
	return x, w.items[it], sigmoid(logit)
}

// auc returns the area under the ROC curve of scores for binary labels,
// computed from ranks (Mann–Whitney U) with ties sharing their mean rank.
// It returns NaN when either class is empty.
func auc(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var rankSum float64
	var pos, neg int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				rankSum += mean
			}
		}
		i = j
	}
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		// Pairs (pos, neg): (0.4 vs 0.1) win, (0.4 vs 0.6) lose, (0.8 vs both) win: 3/4.
		{"mixed", []float64{0.1, 0.4, 0.6, 0.8}, []bool{false, true, false, true}, 0.75},
		// A tie between a positive and a negative counts one half: (1 + 0.5)/2.
		{"tie across classes", []float64{0.1, 0.5, 0.5}, []bool{false, true, false}, 0.75},
		{"unsorted input", []float64{0.7, 0.2, 0.9, 0.3}, []bool{true, false, false, true}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auc(tt.scores, tt.labels); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("auc(%v, %v) = %v, want %v", tt.scores, tt.labels, got, tt.want)
			}
		})
	}
	if got := auc([]float64{0.1, 0.2}, []bool{true, true}); !math.IsNaN(got) {
		t.Errorf("auc(one class) = %v, want NaN", got)
	}
}

func TestLearnSynthetic(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 60_000
	}
	w := newWorld(1)
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tenth := n / 10
	var firstLoss, lastLoss float64
	var clicks int
	for i := range n {
		x, it, p := w.example()
		clicked := w.rng.Float64() < p
		l := Negative
		if clicked {
			l = Positive
			clicks++
		}
		pred := m.Learn(&x, it, l)
		loss := logLoss(pred, clicked)
		switch {
		case i < tenth:
			firstLoss += loss
		case i >= n-tenth:
			lastLoss += loss
		}
	}
	firstLoss /= float64(tenth)
	lastLoss /= float64(tenth)
	ctr := float64(clicks) / float64(n)
	t.Logf("n=%d ctr=%.4f first-10%% logloss=%.4f last-10%% logloss=%.4f", n, ctr, firstLoss, lastLoss)
	if ctr < 0.02 || ctr > 0.10 {
		t.Fatalf("synthetic CTR = %.4f, want about 0.05: the test world is mis-tuned", ctr)
	}
	if !(lastLoss < firstLoss*0.95) {
		t.Errorf("online log loss: last 10%% = %.4f, want clearly below first 10%% = %.4f", lastLoss, firstLoss)
	}

	// Held-out: fresh examples from the same world, scored without learning.
	const held = 30_000
	scores := make([]float64, held)
	truth := make([]float64, held)
	labels := make([]bool, held)
	var p Prepared
	out := make([]float64, 1)
	for i := range held {
		x, it, pt := w.example()
		m.Prepare(&x, &p)
		m.Score(&p, []event.Item{it}, out)
		scores[i], truth[i], labels[i] = out[0], pt, w.rng.Float64() < pt
	}
	got, best := auc(scores, labels), auc(truth, labels)
	t.Logf("held-out AUC = %.4f (true probabilities reach %.4f)", got, best)
	if got <= 0.75 {
		t.Errorf("held-out AUC = %.4f, want > 0.75 (true probabilities reach %.4f)", got, best)
	}
}
