package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
)

type users map[string]event.User

func (u users) User(_ context.Context, id string) (event.User, bool, error) {
	v, ok := u[id]
	return v, ok, nil
}

func (users) Activity(context.Context, string) (features.Activity, error) {
	return features.Activity{}, nil
}

func TestSwitch(t *testing.T) {
	var notified []string
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s := NewSet(func() time.Time { return at }, func(name string, on bool) {
		if on {
			notified = append(notified, name)
		}
	})
	if err := s.Switch("no-such-fault", true); !errors.Is(err, ErrUnknown) {
		t.Errorf("Switch(unknown) = %v, want ErrUnknown", err)
	}
	if err := s.Switch(ETLNullAge, true); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.States() {
		if want := st.Name == ETLNullAge; st.Active != want || (want && !st.Since.Equal(at)) || st.Description == "" {
			t.Errorf("state %+v, want active=%v since %v and a description", st, want, at)
		}
	}
	if len(notified) != 1 || notified[0] != ETLNullAge {
		t.Errorf("notified %v, want [%s]", notified, ETLNullAge)
	}
}

// TestStoreETLNullAge: the talk's ETL bug nulls the age bucket of new
// users only, and only while the fault is on.
func TestStoreETLNullAge(t *testing.T) {
	src := users{
		"fresh":  {ID: "fresh", AgeBucket: "18-24", Segment: "new"},
		"oldtim": {ID: "oldtim", AgeBucket: "35-44", Segment: "regular"},
	}
	set := NewSet(nil, nil)
	st := Store{Source: src, Faults: set, Budget: time.Millisecond}
	tests := []struct {
		user    string
		on      bool
		wantAge string
	}{
		{"fresh", false, "18-24"},
		{"fresh", true, ""},
		{"oldtim", true, "35-44"},
	}
	for _, tc := range tests {
		if err := set.Switch(ETLNullAge, tc.on); err != nil {
			t.Fatal(err)
		}
		u, known, _, err := st.Features(t.Context(), tc.user)
		if err != nil || !known || u.AgeBucket != tc.wantAge {
			t.Errorf("fault %v: Features(%s) = age %q, known %v, %v; want age %q", tc.on, tc.user, u.AgeBucket, known, err, tc.wantAge)
		}
	}
}

// TestStoreSlow: with the fault on, a third of the reads miss a deadline
// of the budget.
func TestStoreSlow(t *testing.T) {
	set := NewSet(nil, nil)
	st := Store{Source: users{}, Faults: set, Budget: 5 * time.Millisecond}
	if err := set.Switch(SlowFeatureStore, true); err != nil {
		t.Fatal(err)
	}
	late := 0
	for range 9 {
		ctx, cancel := context.WithTimeout(t.Context(), st.Budget)
		if _, _, err := st.User(ctx, "u"); errors.Is(err, context.DeadlineExceeded) {
			late++
		}
		cancel()
	}
	if late != 3 {
		t.Errorf("%d of 9 reads missed the budget, want 3", late)
	}
}

// immediateUsers is an in-memory source that says so.
type immediateUsers struct{ users }

func (immediateUsers) Immediate() bool { return true }

// TestStoreImmediate: the store is immediate (the engine gives it no
// deadline context) only when its source is and the slow-store fault,
// which waits on the deadline, is off.
func TestStoreImmediate(t *testing.T) {
	set := NewSet(nil, nil)
	tests := []struct {
		name   string
		source Source
		slow   bool
		want   bool
	}{
		{"immediate source", immediateUsers{}, false, true},
		{"immediate source, slow fault on", immediateUsers{}, true, false},
		{"source that may wait", users{}, false, false},
	}
	for _, tc := range tests {
		if err := set.Switch(SlowFeatureStore, tc.slow); err != nil {
			t.Fatal(err)
		}
		if got := (Store{Source: tc.source, Faults: set}).Immediate(); got != tc.want {
			t.Errorf("%s: Immediate() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
