package evaluate

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/model"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		str  string
	}{
		{"logged", Spec{Kind: KindLogged}, "logged"},
		{"popularity", Spec{Kind: KindPopularity}, "popularity"},
		{"popularity:explore=0.1", Spec{Kind: KindPopularity, Explore: 0.1}, "popularity:explore=0.1"},
		{"ftrl", Spec{Kind: KindFTRL}, "ftrl"},
		{"ftrl: l2=2, alpha=0.05 ,l1=0,explore_top=5,explore=0.2", Spec{Kind: KindFTRL, Model: model.Config{Alpha: 0.05, L1: -1, L2: 2}, Explore: 0.2, ExploreTop: 5},
			"ftrl:alpha=0.05,l1=0,l2=2,explore=0.2,explore_top=5"},
		{"ftrl:from=data/model.snap,bits=18", Spec{Kind: KindFTRL, Path: "data/model.snap", Model: model.Config{Bits: 18}}, "ftrl:bits=18,from=data/model.snap"},
		{"data/model.snap", Spec{Kind: KindSnapshot, Path: "data/model.snap"}, "data/model.snap"},
		{"/tmp/a:b.snap:explore=0.05", Spec{Kind: KindSnapshot, Path: "/tmp/a:b.snap", Explore: 0.05}, "/tmp/a:b.snap:explore=0.05"},
		{"/tmp/a:b.snap", Spec{Kind: KindSnapshot, Path: "/tmp/a:b.snap"}, "/tmp/a:b.snap"},
	} {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q) error = %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseSpec(%q) differs (-want +got):\n%s", tc.in, diff)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseSpec(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
	}
	for _, in := range []string{"", ":explore=0.1", "logged:explore=0.1", "popularity:alpha=0.1", "ftrl:alpha=-1", "ftrl:alpha=x",
		"popularity:explore=1", "popularity:explore=0.1,explore=0.2", "ftrl:bits=40", "ftrl:l1=NaN", "popularity:explore_top=-1", "ftrl:from="} {
		if got, err := ParseSpec(in); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("ParseSpec(%q) = %+v, %v; want ErrInvalidSpec", in, got, err)
		}
	}
}

func TestParseSpecs(t *testing.T) {
	got, err := ParseSpecs("ftrl:alpha=0.2,l1=0, popularity ,logged,m.snap:explore=0.1")
	if err != nil {
		t.Fatalf("ParseSpecs error = %v", err)
	}
	want := []Spec{
		{Kind: KindFTRL, Model: model.Config{Alpha: 0.2, L1: -1}},
		{Kind: KindPopularity},
		{Kind: KindLogged},
		{Kind: KindSnapshot, Path: "m.snap", Explore: 0.1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSpecs differs (-want +got):\n%s", diff)
	}
	if _, err := ParseSpecs(" , "); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("ParseSpecs(empty) error = %v, want ErrInvalidSpec", err)
	}
}

// FuzzParseSpec: a spec that parses prints to a form that parses back to
// the same spec, and parsing never panics.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"logged", "popularity:explore=0.1,explore_top=3", "ftrl:alpha=0.2,beta=1,l1=0,l2=3,bits=18,from=x.snap",
		"/a:b.snap:explore=0.5", "a:b=c:explore=0", "ftrl:from=x:y", "p:q", ":", "ftrl:alpha=1e-300", "x :explore=0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("ParseSpec(%q) error = %v, want ErrInvalidSpec", s, err)
			}
			return
		}
		again, err := ParseSpec(sp.String())
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %+v, whose String %q does not parse: %v", s, sp, sp.String(), err)
		}
		if diff := cmp.Diff(sp, again); diff != "" {
			t.Fatalf("ParseSpec(%q).String() = %q parses to another spec (-first +second):\n%s", s, sp.String(), diff)
		}
	})
}
