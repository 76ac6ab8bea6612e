package slo

import (
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRing(10*time.Second, time.Minute) // 7 buckets
	if got := r.sum(t0, time.Minute); got != (counts{}) {
		t.Errorf("empty ring sum = %+v, want zero", got)
	}
	r.add(at(0), counts{good: 1})
	r.add(at(5*time.Second), counts{bad: 1})
	r.add(at(10*time.Second), counts{good: 2})
	r.add(at(35*time.Second), counts{good: 4, bad: 1})
	tests := []struct {
		name string
		at   time.Duration
		w    time.Duration
		want counts
	}{
		{"whole minute", 35 * time.Second, time.Minute, counts{good: 7, bad: 2}},
		{"current bucket only", 35 * time.Second, 10 * time.Second, counts{good: 4, bad: 1}},
		{"last 20s: buckets 2 and 3", 35 * time.Second, 20 * time.Second, counts{good: 4, bad: 1}},
		{"last 40s: buckets 0-3", 35 * time.Second, 40 * time.Second, counts{good: 7, bad: 2}},
		{"last 30s: buckets 1-3", 35 * time.Second, 30 * time.Second, counts{good: 6, bad: 1}},
		{"ending before the newest", 15 * time.Second, 20 * time.Second, counts{good: 3, bad: 1}},
		{"later, nothing new", 85 * time.Second, time.Minute, counts{good: 4, bad: 1}},
		{"much later", 10 * time.Minute, time.Minute, counts{}},
		{"window shorter than a bucket reads one", 35 * time.Second, time.Second, counts{good: 4, bad: 1}},
	}
	for _, tt := range tests {
		if got := r.sum(at(tt.at), tt.w); got != tt.want {
			t.Errorf("%s: sum(+%v, %v) = %+v, want %+v", tt.name, tt.at, tt.w, got, tt.want)
		}
	}

	// Writing past the span clears the buckets it reuses.
	r.add(at(75*time.Second), counts{good: 10})
	if got, want := r.sum(at(75*time.Second), time.Minute), (counts{good: 14, bad: 1}); got != want {
		t.Errorf("after wrap: sum = %+v, want %+v", got, want)
	}
	// A jump beyond the span clears everything.
	r.add(at(time.Hour), counts{bad: 3})
	if got, want := r.sum(at(time.Hour), time.Hour), (counts{bad: 3}); got != want {
		t.Errorf("after jump: sum = %+v, want %+v", got, want)
	}
	// The clock going back within the span counts in its bucket; further
	// back is dropped.
	r.add(at(time.Hour-20*time.Second), counts{good: 1})
	r.add(at(time.Hour-10*time.Minute), counts{good: 100})
	if got, want := r.sum(at(time.Hour), time.Hour), (counts{good: 1, bad: 3}); got != want {
		t.Errorf("after going back: sum = %+v, want %+v", got, want)
	}
}

func TestRingBeforeEpoch(t *testing.T) {
	r := newRing(time.Second, 10*time.Second)
	t0 := time.Unix(-5, -500_000_000) // -5.5s: bucket -6
	r.add(t0, counts{good: 1})
	r.add(t0.Add(time.Second), counts{bad: 1}) // -4.5s: bucket -5
	if got, want := r.sum(t0.Add(time.Second), 2*time.Second), (counts{good: 1, bad: 1}); got != want {
		t.Errorf("sum = %+v, want %+v", got, want)
	}
	if got, want := r.sum(t0.Add(time.Second), time.Second), (counts{bad: 1}); got != want {
		t.Errorf("sum of one bucket = %+v, want %+v", got, want)
	}
}
