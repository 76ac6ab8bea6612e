package engine

import (
	"math/rand/v2"
	"testing"
)

// TestSlotIndex runs random sets, gets and deletes against a Go map. The
// hashes are drawn from few values with the same low bits, so that probe
// runs are long, cross the table's end and interleave entries of different
// homes: what backward-shift deletion has to get right.
func TestSlotIndex(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int    // entries at most, as a ring shard's slots
		hashes uint64 // distinct hash values drawn
		spread uint64 // hash = v*spread + small: homes cluster when spread is a multiple of the size
	}{
		{"clustered homes", 16, 64, 32},
		{"wrapping runs", 16, 40, 32*1024 + 30},
		{"spread", 100, 1000, 0x9e3779b97f4a7c15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			x := newSlotIndex(tc.n)
			want := map[uint64]uint32{}
			for op := range 20000 {
				v := rng.Uint64N(tc.hashes)
				h := v*tc.spread + v%3
				switch r := rng.IntN(3); {
				case r == 0 && len(want) < tc.n || want[h] != 0 && r == 0:
					s := uint32(rng.IntN(1000))
					x.set(h, s)
					want[h] = s + 1
				case r == 1:
					x.del(h)
					delete(want, h)
				}
				for k, s := range want {
					if got, ok := x.get(k); !ok || got != s-1 {
						t.Fatalf("op %d: get(%#x) = %d, %v; want %d, true", op, k, got, ok, s-1)
					}
				}
				if got, ok := x.get(h); ok != (want[h] != 0) {
					t.Fatalf("op %d: get(%#x) found = %v (slot %d), want %v", op, h, ok, got, want[h] != 0)
				}
			}
		})
	}
}
