package evaluate

import (
	"strings"

	"github.com/sightline/sightline/internal/decisionlog"
)

// Outcome bits of a shown item.
const (
	bitImpression uint8 = 1 << iota
	bitClick
	bitConversion
)

// outcome is what happened to one item of one decision.
type outcome struct {
	item uint32 // interned item id
	bits uint8
}

// joinIndex holds the events of the log by the decision they answer, in
// compact form: item ids interned, one byte of outcome bits per item, so a
// million decisions of ten shown items take about 200 megabytes.
// Repeated events (at-least-once delivery) set the same bit again.
type joinIndex struct {
	items  map[string]uint32
	byReq  map[string][]outcome
	events int64
}

func newJoinIndex() *joinIndex {
	return &joinIndex{items: map[string]uint32{}, byReq: map[string][]outcome{}}
}

// add records one event; events of unknown types are ignored.
func (j *joinIndex) add(ev *decisionlog.Event) {
	j.events++
	var bit uint8
	switch ev.Type {
	case "impression":
		bit = bitImpression
	case "click":
		bit = bitClick
	case "conversion":
		bit = bitConversion
	default:
		return
	}
	if ev.RequestID == "" || ev.ItemID == "" {
		return
	}
	id, ok := j.items[ev.ItemID]
	if !ok {
		id = uint32(len(j.items))
		j.items[strings.Clone(ev.ItemID)] = id
	}
	outs, ok := j.byReq[ev.RequestID]
	for i := range outs {
		if outs[i].item == id {
			outs[i].bits |= bit
			return
		}
	}
	if !ok {
		j.byReq[strings.Clone(ev.RequestID)] = append(make([]outcome, 0, 2), outcome{id, bit})
		return
	}
	j.byReq[ev.RequestID] = append(outs, outcome{id, bit})
}

// take returns the outcomes of decision requestID and forgets them (a
// repeated decision row is skipped before it gets here).
func (j *joinIndex) take(requestID string) []outcome {
	outs, ok := j.byReq[requestID]
	if ok {
		delete(j.byReq, requestID)
	}
	return outs
}

// bits returns the outcome bits of itemID in outs.
func (j *joinIndex) bits(outs []outcome, itemID string) uint8 {
	if len(outs) == 0 {
		return 0
	}
	id, ok := j.items[itemID]
	if !ok {
		return 0
	}
	for _, o := range outs {
		if o.item == id {
			return o.bits
		}
	}
	return 0
}
