package ingest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sightline/sightline/internal/event"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashWriter(dir) // never returns: the parent kills it
	}
	goleak.VerifyTestMain(m)
}

// testEvents returns n valid events with IDs prefix-0 .. prefix-(n-1).
func testEvents(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{
			ID:          fmt.Sprintf("%s-%d", prefix, i),
			Type:        event.Type(1 + i%3),
			UserID:      fmt.Sprintf("u%d", i%97),
			ItemID:      fmt.Sprintf("item-%d", i%1013),
			RequestID:   "req-" + prefix,
			Channel:     "web",
			Timestamp:   time.Date(2026, 3, 1, 12, 0, 0, i, time.UTC),
			DwellMS:     int64(i),
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}
	}
	return evs
}
