package model

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSplit(t *testing.T) {
	tests := []struct {
		in   string
		want Split
	}{
		{"ftrl=90,popularity=10", Split{{"ftrl", 90}, {"popularity", 10}}},
		{" ftrl = 0.5 , popularity=0.5 ", Split{{"ftrl", 0.5}, {"popularity", 0.5}}},
		{"only=1", Split{{"only", 1}}},
		{"a=1,b=0", Split{{"a", 1}, {"b", 0}}},
		{"v1.2-x_y=3", Split{{"v1.2-x_y", 3}}},
	}
	for _, tt := range tests {
		got, err := ParseSplit(tt.in)
		if err != nil {
			t.Errorf("ParseSplit(%q) error = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseSplit(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
		// String round-trips.
		again, err := ParseSplit(got.String())
		if err != nil || !cmp.Equal(got, again) {
			t.Errorf("ParseSplit(%q.String() = %q) = %v, %v; want %v", tt.in, got.String(), again, err, got)
		}
	}
}

func TestParseSplitErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"ftrl",
		"ftrl=",
		"=10",
		"ftrl=abc",
		"ftrl=-1,popularity=2",
		"ftrl=NaN",
		"ftrl=Inf",
		"ftrl=0,popularity=0",
		"ftrl=50,ftrl=50",
		"ftrl=50,",
		",ftrl=50",
		"ftrl=1=2",
		"my arm=1",
		"ftrl=1e308,popularity=1e308",
		"ünï=1",
	} {
		got, err := ParseSplit(in)
		if !errors.Is(err, ErrInvalidSplit) {
			t.Errorf("ParseSplit(%q) = %v, %v; want an error wrapping ErrInvalidSplit", in, got, err)
		}
	}
}

func TestSplitAssignDeterministic(t *testing.T) {
	s := Split{{"ftrl", 90}, {"popularity", 10}}
	// The same split built separately (as another process would) assigns alike.
	other, err := ParseSplit("ftrl=90,popularity=10")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		id := "user-" + strconv.Itoa(i)
		a, b, c := s.Assign(id), s.Assign(id), other.Assign(id)
		if a != b || a != c {
			t.Fatalf("Assign(%q) = %q, %q, %q; want one answer", id, a, b, c)
		}
	}
	// Golden assignments: they must never change across processes or
	// releases, or users would switch arms mid-experiment.
	golden := map[string]string{
		"alice": "ftrl", "bob": "popularity", "carol": "ftrl",
		"dave": "ftrl", "erin": "ftrl", "frank": "popularity",
	}
	for id, want := range golden {
		if got := DefaultSplit.Assign(id); got != want {
			t.Errorf("DefaultSplit.Assign(%q) = %q, want %q", id, got, want)
		}
	}
	if got := (Split{}).Assign("x"); got != "" {
		t.Errorf("empty Split.Assign() = %q, want \"\"", got)
	}
	if got := (Split{{"a", 0}}).Assign("x"); got != "" {
		t.Errorf("zero-weight Split.Assign() = %q, want \"\"", got)
	}
	if got := (Split{{"a", math.NaN()}, {"b", 1}}).Assign("x"); got != "" {
		t.Errorf("NaN-weight Split.Assign() = %q, want \"\"", got)
	}
}

func TestSplitAssignProportions(t *testing.T) {
	tests := []Split{
		DefaultSplit,
		{{"ftrl", 90}, {"popularity", 10}},
		{{"a", 1}, {"b", 2}, {"c", 0}, {"d", 7}},
	}
	const n = 100_000
	for _, s := range tests {
		t.Run(s.String(), func(t *testing.T) {
			counts := map[string]int{}
			for i := range n {
				counts[s.Assign("u"+strconv.Itoa(i))]++
			}
			var total float64
			for _, a := range s {
				total += a.Weight
			}
			for _, a := range s {
				want := a.Weight / total
				got := float64(counts[a.Name]) / n
				// 5 standard deviations of a binomial proportion, plus slack.
				tol := 5*math.Sqrt(want*(1-want)/n) + 1e-9
				if math.Abs(got-want) > tol {
					t.Errorf("arm %q share = %.4f, want %.4f ± %.4f", a.Name, got, want, tol)
				}
			}
			if len(counts) > len(s) {
				t.Errorf("Assign() returned names outside the split: %v", counts)
			}
		})
	}
}
