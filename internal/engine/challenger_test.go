package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// versionedScorer is a fakeScorer with a version of its own.
type versionedScorer struct {
	fakeScorer
	version string
}

func (s *versionedScorer) Version() string { return s.version }

func TestChallengerRouting(t *testing.T) {
	champ := &fakeScorer{score: func(event.Item) float64 { return 0.1 }}
	e := newEngineFor(t, &fakeStore{users: knownUsers()}, champ, func(c *Config) {
		c.Split = model.Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}
		c.ChallengerVariant = "challenger"
		c.FeatureBudget, c.ModelBudget = time.Hour, time.Hour // no deadline a loaded machine can miss
	})
	chal := &versionedScorer{fakeScorer{score: func(event.Item) float64 { return 0.2 }}, "ftrl-next"}
	serve := func(share float64) map[string]string {
		t.Helper()
		if err := e.SetChallenger(&Challenger{Base: "ftrl", Scorer: chal, Share: share}); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for i := range 4000 {
			user := fmt.Sprintf("user-%d", i)
			d, err := e.Recommend(t.Context(), Request{UserID: user, Count: 3})
			if err != nil {
				t.Fatal(err)
			}
			got[user] = d.Variant
			if d.Variant == "challenger" && (d.ModelVersion != "ftrl-next" || d.Items[0].Score != 0.2) {
				t.Fatalf("challenger decision served by version %q with score %v", d.ModelVersion, d.Items[0].Score)
			}
			if base := model.Split.Assign(model.Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}, user); base == "popularity" && d.Variant != "popularity" {
				t.Fatalf("user of the popularity arm served by %q", d.Variant)
			}
		}
		return got
	}
	at5, at25 := serve(0.05), serve(0.25)
	count := func(m map[string]string) int {
		n := 0
		for _, v := range m {
			if v == "challenger" {
				n++
			}
		}
		return n
	}
	// About the share of the ftrl half of 4,000 users.
	if n := count(at5); n < 60 || n > 145 {
		t.Errorf("5%% canary served %d users, want about 100", n)
	}
	if n := count(at25); n < 420 || n > 580 {
		t.Errorf("25%% canary served %d users, want about 500", n)
	}
	for user, v := range at5 {
		if v == "challenger" && at25[user] != "challenger" {
			t.Fatalf("user %s served by the challenger at 5%% but not at 25%%", user)
		}
	}
	if err := e.SetChallenger(nil); err != nil {
		t.Fatal(err)
	}
	if off := serve(0); count(off) != 0 {
		t.Errorf("share 0 served %d users", count(off))
	}
	if err := e.SetChallenger(nil); err != nil {
		t.Errorf("SetChallenger(nil) error = %v", err)
	}
	if e.CurrentChallenger() != nil {
		t.Error("challenger still set after SetChallenger(nil)")
	}
}

func TestSetChallengerErrors(t *testing.T) {
	s := &fakeScorer{score: func(event.Item) float64 { return 0.1 }}
	plain := newEngineFor(t, &fakeStore{}, s, nil)
	if err := plain.SetChallenger(&Challenger{Base: "ftrl", Scorer: s, Share: 0.1}); !errors.Is(err, ErrChallenger) {
		t.Errorf("without a challenger variant: %v, want ErrChallenger", err)
	}
	e := newEngineFor(t, &fakeStore{}, s, func(c *Config) { c.ChallengerVariant = "challenger" })
	for name, c := range map[string]*Challenger{
		"unknown base": {Base: "nope", Scorer: s, Share: 0.1},
		"no scorer":    {Base: "ftrl", Share: 0.1},
		"share > 1":    {Base: "ftrl", Scorer: s, Share: 1.5},
		"share NaN":    {Base: "ftrl", Scorer: s, Share: nan()},
	} {
		if err := e.SetChallenger(c); !errors.Is(err, ErrChallenger) {
			t.Errorf("%s: %v, want ErrChallenger", name, err)
		}
	}
	if _, err := New(&fakeStore{}, Config{Split: model.Split{{Name: "ftrl", Weight: 1}}, Scorers: map[string]Scorer{"ftrl": s}, ChallengerVariant: "ftrl"}); err == nil {
		t.Error("a challenger variant named like an arm was accepted")
	}
}

func nan() float64 { var z float64; return z / z }

func TestShadowChallenger(t *testing.T) {
	// The champion likes low item numbers, the challenger high ones.
	num := func(it event.Item) float64 {
		c, i := catalogPos(it.ID)
		return float64(c*20+i) / 1000
	}
	champ := &fakeScorer{score: func(it event.Item) float64 { return 0.9 - num(it) }}
	chal := &versionedScorer{fakeScorer{score: func(it event.Item) float64 { return 0.01 + num(it) }}, "ftrl-next"}
	e := newEngineFor(t, &fakeStore{users: knownUsers()}, champ, func(c *Config) {
		c.Split = model.Split{{Name: "ftrl", Weight: 50}, {Name: "popularity", Weight: 50}}
		c.ChallengerVariant = "challenger"
		c.Index = IndexConfig{PerCategory: 20, Global: 160}   // every item a candidate
		c.FeatureBudget, c.ModelBudget = time.Hour, time.Hour // no deadline a loaded machine can miss
	})
	if err := e.SetChallenger(&Challenger{Base: "ftrl", Scorer: chal, Share: 0.2, Shadow: true}); err != nil {
		t.Fatal(err)
	}
	var shadowed, canary int
	for i := range 300 {
		d, err := e.Recommend(t.Context(), Request{UserID: fmt.Sprintf("user-%d", i), Count: 4, Exclude: []string{"i07-019"}})
		if err != nil {
			t.Fatal(err)
		}
		switch d.Variant {
		case "ftrl":
			shadowed++
			sh := d.Shadow
			if sh == nil || sh.ModelVersion != "ftrl-next" || sh.Error != "" || len(sh.Items) != 4 {
				t.Fatalf("ftrl decision's shadow = %+v, want the challenger's 4 items", sh)
			}
			// The challenger's best eligible items: the highest numbers,
			// the excluded one left out, at most MaxPerCategory (3) of
			// a category as serving shows them.
			if want := []string{"i07-018", "i07-017", "i07-016", "i06-019"}; !slices.Equal(sh.Items, want) {
				t.Fatalf("shadow items %v, want %v", sh.Items, want)
			}
			if sh.Scores[0] != 0.01+num(event.Item{ID: "i07-018"}) || sh.Overlap != 0 {
				t.Errorf("shadow scores %v overlap %d", sh.Scores, sh.Overlap)
			}
			if d.Items[0].ItemID == "i07-018" {
				t.Error("the shadow's choice was shown")
			}
		case "challenger":
			canary++
			if d.Shadow != nil {
				t.Error("a canary decision carries a shadow")
			}
		default:
			if d.Shadow != nil {
				t.Errorf("a %s decision carries a shadow", d.Variant)
			}
		}
	}
	if shadowed == 0 || canary == 0 {
		t.Errorf("%d shadowed and %d canary decisions, want both", shadowed, canary)
	}
	// A failing shadow is recorded, and serving is unaffected.
	bad := &versionedScorer{fakeScorer{err: errors.New("weights not loaded")}, "broken"}
	if err := e.SetChallenger(&Challenger{Base: "ftrl", Scorer: bad, Shadow: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		d, err := e.Recommend(t.Context(), Request{UserID: fmt.Sprintf("user-%d", i), Count: 4})
		if err != nil {
			t.Fatal(err)
		}
		if d.Variant == "ftrl" && (d.Fallback != ReasonNone || d.Shadow == nil || d.Shadow.Error == "" || len(d.Items) != 4) {
			t.Fatalf("decision with a failing shadow: fallback %q, shadow %+v, %d items", d.Fallback, d.Shadow, len(d.Items))
		}
	}
}
