package sim

import (
	"math/rand/v2"

	"github.com/sightline/sightline/client"
)

// Engagement is how a simulated user responds to one answer, under the
// ground truth: which shown items are clicked, and what the answer and the
// best possible answer were worth.
type Engagement struct {
	// DwellMS[k] is the dwell time of a click on the k-th shown item, in
	// milliseconds, and 0 when the item was not clicked (or is unknown).
	DwellMS []int64
	// Clicks counts the clicked items.
	Clicks int
	// Unknown counts the shown items that are not in the world.
	Unknown int
	// Expected is the sum over positions of [World.ClickProbAt] of the
	// shown items: the answer's expected clicks, without sampling noise.
	Expected float64
	// Oracle is the same sum for the ground truth's best items
	// ([World.Oracle]) shown in as many positions: the most any answer of
	// that length could expect.
	Oracle float64
}

// Clicked reports whether the k-th shown item was clicked.
func (e *Engagement) Clicked(k int) bool { return e.DwellMS[k] > 0 }

// Engage draws user ui's clicks on the answer items (top first) on channel
// ch from r, with position bias, into e (reusing its buffer). For each item
// in order it draws one number for the click and, when clicked, one for the
// dwell time, so a seeded r gives the same clicks for the same answers. It
// is safe for concurrent use with distinct r and e.
func (w *World) Engage(r *rand.Rand, ui int, ch string, items []client.ScoredItem, e *Engagement) {
	u := w.User(ui)
	*e = Engagement{DwellMS: e.DwellMS[:0]}
	for k := range items {
		it, ok := w.ItemByID(items[k].ItemID)
		if !ok {
			e.Unknown++
			e.DwellMS = append(e.DwellMS, 0)
			continue
		}
		p := w.ClickProbAt(u, it, ch, k)
		e.Expected += p
		var ms int64
		if r.Float64() < p {
			ms = max(dwell(r), 1)
			e.Clicks++
		}
		e.DwellMS = append(e.DwellMS, ms)
	}
	if len(items) > 0 {
		for k, i := range w.Oracle(u, ch, len(items)) {
			e.Oracle += w.ClickProbAt(u, w.Item(i), ch, k)
		}
	}
}
