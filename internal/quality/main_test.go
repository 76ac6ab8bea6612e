package quality

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a manual clock for the injected Now of every component.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }
func str(s string) *string               { return &s }
