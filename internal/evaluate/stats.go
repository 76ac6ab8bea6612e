package evaluate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Fields of the per-group sums. Every sum is kept per position and per
// bootstrap group, so that a bootstrap resample of groups is a weighted
// sum of these, not a pass over the log.
const (
	// Logged (target-independent): slots, clicks, conversions.
	lN = iota
	lR
	lV
	loggedFields
)

const (
	// Per target, with clipped weights w: Σ w·r, Σ w, Σ of the direct
	// method term, Σ w·(r - q̂(logged item)), Σ w·conversion.
	tWR = iota
	tW
	tDM
	tCorr
	tWV
	targetFields
)

// diag accumulates the weight diagnostics of one position of a target.
type diag struct {
	n, sw, sw2, nz, nclip, cut, maxw, unsup float64
}

func (a *diag) add(w, clip, unsup float64) {
	a.n++
	a.sw += w
	a.sw2 += w * w
	if w > 0 {
		a.nz++
	}
	if clip > 0 && w > clip {
		a.nclip++
		a.cut += w - clip
	}
	a.maxw = max(a.maxw, w)
	a.unsup += unsup
}

func (a *diag) merge(b *diag) {
	a.n += b.n
	a.sw += b.sw
	a.sw2 += b.sw2
	a.nz += b.nz
	a.nclip += b.nclip
	a.cut += b.cut
	a.maxw = max(a.maxw, b.maxw)
	a.unsup += b.unsup
}

// diagnostics turns the sums into the report's figures.
func (a *diag) diagnostics() Diagnostics {
	d := Diagnostics{Slots: int64(a.n), MaxWeight: a.maxw}
	if a.n == 0 {
		return d
	}
	if a.sw2 > 0 {
		d.ESS = a.sw * a.sw / a.sw2
	}
	d.ESSShare = d.ESS / a.n
	d.Unsupported = a.unsup / a.n
	d.Matched = a.nz / a.n
	d.MeanWeight = a.sw / a.n
	if a.nz > 0 {
		d.ClippedShare = a.nclip / a.nz
	}
	if a.sw > 0 {
		d.ClippedMass = a.cut / a.sw
	}
	return d
}

// sums holds per-position, per-group sums of nf fields.
type sums struct {
	groups, nf int
	pos        [][]float64 // [position][group*nf+field]
}

func (s *sums) at(k, g int) []float64 {
	for k >= len(s.pos) {
		s.pos = append(s.pos, make([]float64, s.groups*s.nf))
	}
	return s.pos[k][g*s.nf : (g+1)*s.nf]
}

// totals writes into out[k][f] the sums over groups, each group counted
// c[g] times (all once when c is nil).
func (s *sums) totals(c []float64, out [][]float64) [][]float64 {
	out = slices.Grow(out[:0], len(s.pos))[:len(s.pos)]
	for k, p := range s.pos {
		t := slices.Grow(out[k][:0], s.nf)[:s.nf]
		clear(t)
		for g := range s.groups {
			w := 1.0
			if c != nil {
				if w = c[g]; w == 0 {
					continue
				}
			}
			row := p[g*s.nf : (g+1)*s.nf]
			for f, x := range row {
				t[f] += w * x
			}
		}
		out[k] = t
	}
	return out
}

// Layout of the values computed from totals (valuesOf).
const (
	vIPS = iota
	vSNIPS
	vDR
	vIPSPerDecision
	vSNIPSPerDecision
	vDRPerDecision
	vConvIPS
	vConvSNIPS
	vConvIPSPerDecision
	vConvSNIPSPerDecision
	vOverall // per position k from here: vOverall+3k+{0,1,2} = ips, snips, dr
)

// valuesOf computes a target's estimates from totals: decisions, the logged
// totals per position and the target's. Undefined values are NaN.
func valuesOf(decisions float64, lt, tt [][]float64, out []float64) []float64 {
	k := len(lt)
	out = slices.Grow(out[:0], vOverall+3*k)[:vOverall+3*k]
	var n, wr, wv, sn, snv, dr float64
	snOK := true
	for p := range k {
		np := lt[p][lN]
		var t []float64
		if p < len(tt) {
			t = tt[p]
		} else {
			t = make([]float64, targetFields)
		}
		n += np
		wr += t[tWR]
		wv += t[tWV]
		ips, snips, drp := math.NaN(), math.NaN(), math.NaN()
		if np > 0 {
			ips = t[tWR] / np
			if t[tW] > 0 {
				snips = t[tWR] / t[tW]
				drp = t[tDM]/np + t[tCorr]/t[tW]
				sn += np * snips
				snv += np * t[tWV] / t[tW]
				dr += np * drp
			} else {
				snOK = false
			}
		}
		out[vOverall+3*p], out[vOverall+3*p+1], out[vOverall+3*p+2] = ips, snips, drp
	}
	for i := range vOverall {
		out[i] = math.NaN()
	}
	// SNIPS and DR normalize each position by its weight: undefined when a
	// position has no weight at all.
	if n > 0 {
		out[vIPS], out[vConvIPS] = wr/n, wv/n
		if snOK {
			out[vSNIPS], out[vConvSNIPS], out[vDR] = sn/n, snv/n, dr/n
		}
	}
	if decisions > 0 {
		out[vIPSPerDecision], out[vConvIPSPerDecision] = wr/decisions, wv/decisions
		if snOK && n > 0 {
			out[vSNIPSPerDecision], out[vConvSNIPSPerDecision], out[vDRPerDecision] = sn/decisions, snv/decisions, dr/decisions
		}
	}
	return out
}

// Layout of the logged values (loggedValuesOf).
const (
	lvCTR = iota
	lvPerDecision
	lvConv
	lvPositions // per position k from here: CTR
)

func loggedValuesOf(decisions float64, lt [][]float64, out []float64) []float64 {
	out = slices.Grow(out[:0], lvPositions+len(lt))[:lvPositions+len(lt)]
	var n, r, v float64
	for p, t := range lt {
		n += t[lN]
		r += t[lR]
		v += t[lV]
		out[lvPositions+p] = ratio(t[lR], t[lN])
	}
	out[lvCTR], out[lvPerDecision], out[lvConv] = ratio(r, n), ratio(r, decisions), ratio(v, n)
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// bootstrap draws b resamples of the groups (multinomial counts, seeded)
// and calls fn with each resample's counts and decision total.
func bootstrap(b, groups int, seed uint64, decPerGroup []float64, fn func(c []float64, decisions float64)) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := make([]float64, groups)
	for range b {
		clear(c)
		for range groups {
			c[rng.IntN(groups)]++
		}
		var dec float64
		for g, n := range c {
			dec += n * decPerGroup[g]
		}
		fn(c, dec)
	}
}

// percentile returns the q-quantile (0..1) of the non-NaN values of xs,
// which it sorts, by linear interpolation; NaN when none is defined.
func percentile(xs []float64, q float64) float64 {
	xs = slices.DeleteFunc(xs, math.IsNaN)
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	f := pos - float64(lo)
	return xs[lo]*(1-f) + xs[hi]*f
}

// interval builds an Interval from a point value and its replicates (nil
// when the value is undefined). Without replicates the bounds are the
// value.
func interval(value float64, reps []float64, level float64) *Interval {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return nil
	}
	iv := &Interval{Value: value, Low: value, High: value}
	if len(reps) == 0 {
		return iv
	}
	a := (1 - level) / 2
	lo, hi := percentile(reps, a), percentile(reps, 1-a)
	if !math.IsNaN(lo) && !math.IsNaN(hi) {
		iv.Low, iv.High = lo, hi
	}
	return iv
}

// verdict returns the reasons d fails the thresholds (none: trustworthy).
func verdict(d Diagnostics, th Thresholds) []string {
	if d.Slots == 0 {
		return []string{ReasonNoData}
	}
	var rs []string
	if d.ESS < th.MinESS || d.ESSShare < th.MinESSShare {
		rs = append(rs, ReasonLowESS)
	}
	if d.Unsupported > th.MaxUnsupported {
		rs = append(rs, ReasonUnsupported)
	}
	if d.ClippedMass > th.MaxClippedMass {
		rs = append(rs, ReasonClipped)
	}
	return rs
}
