package model

import (
	"math"
	"sync"
	"time"
)

// EvalStats are online evaluation statistics over a sliding time window:
// each example is scored before the model learns from it (progressive
// validation), so they measure the model on data it had not seen.
//
// Calibration is MeanPredicted against ObservedCTR: a calibrated model has
// them close.
type EvalStats struct {
	// Window is the configured length of the window.
	Window time.Duration `json:"window_ns"`
	// Count is the number of examples (impressions, plus clicks learned as
	// Positive) in the window. A Flip does not add an example: it turns an
	// earlier negative into a positive.
	Count int64 `json:"count"`
	// LogLoss is the mean log loss of the predictions in the window.
	LogLoss float64 `json:"log_loss"`
	// MeanPredicted is the mean predicted click probability.
	MeanPredicted float64 `json:"mean_predicted"`
	// ObservedCTR is the fraction of examples that were clicked.
	ObservedCTR float64 `json:"observed_ctr"`
}

// evalBuckets is the number of time buckets of the sliding window; the
// window slides in steps of EvalWindow/evalBuckets.
const evalBuckets = 60

type evalBucket struct {
	epoch int64 // time / width of the bucket's start; 0 means empty
	count int64
	loss  float64
	pred  float64
	label float64
}

// evaluator is a ring of time buckets.
type evaluator struct {
	window time.Duration
	width  int64 // nanoseconds per bucket

	mu      sync.Mutex
	buckets [evalBuckets]evalBucket
}

func newEvaluator(window time.Duration) evaluator {
	return evaluator{window: window, width: max(int64(window)/evalBuckets, 1)}
}

// pClamp keeps log loss finite.
const pClamp = 1e-15

func logLoss(p float64, clicked bool) float64 {
	p = min(max(p, pClamp), 1-pClamp)
	if clicked {
		return -math.Log(p)
	}
	return -math.Log(1 - p)
}

// observe records prediction p for an example labelled l at time now.
//
// A Flip corrects the negative recorded for its impression: the loss moves
// from -log(1-p) to -log(p) and the observed label from 0 to 1, without a
// new example. The model does not keep the prediction made at impression
// time, so p here is the one made just before the Flip update; the
// correction lands in the bucket of the click.
func (e *evaluator) observe(now time.Time, p float64, l Label) {
	ep := now.UnixNano()/e.width + 1 // + 1 so that 0 means empty
	e.mu.Lock()
	defer e.mu.Unlock()
	b := &e.buckets[uint64(ep)%evalBuckets]
	if b.epoch != ep {
		*b = evalBucket{epoch: ep}
	}
	switch l {
	case Negative:
		b.count++
		b.loss += logLoss(p, false)
		b.pred += p
	case Positive:
		b.count++
		b.loss += logLoss(p, true)
		b.pred += p
		b.label++
	case Flip:
		b.loss += logLoss(p, true) - logLoss(p, false)
		b.label++
	}
}

func (e *evaluator) stats(now time.Time) EvalStats {
	ep := now.UnixNano()/e.width + 1
	st := EvalStats{Window: e.window}
	var loss, pred, label float64
	e.mu.Lock()
	for i := range e.buckets {
		b := &e.buckets[i]
		if b.epoch == 0 || b.epoch > ep || b.epoch <= ep-evalBuckets {
			continue
		}
		st.Count += b.count
		loss += b.loss
		pred += b.pred
		label += b.label
	}
	e.mu.Unlock()
	if st.Count > 0 {
		n := float64(st.Count)
		st.LogLoss = loss / n
		st.MeanPredicted = pred / n
		st.ObservedCTR = label / n
	}
	return st
}
