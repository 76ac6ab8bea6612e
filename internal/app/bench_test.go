package app

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// BenchmarkRecommendHTTP is one recommendation end to end over loopback
// HTTP against a whole node (telemetry at its defaults), through the Go
// client, with requests in parallel.
func BenchmarkRecommendHTTP(b *testing.B) {
	n := startNode(b, Config{Fsync: "never"})
	w := smallWorld()
	if err := w.Load(b.Context(), n.c); err != nil {
		b.Fatal(err)
	}
	n.Engine().Index().Refresh()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u := w.User(i % len(w.Users()))
			if _, err := n.c.Recommend(b.Context(), client.RecommendRequest{UserID: u.ID, Count: 10, Context: client.Context{Channel: "web"}}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkEventsHTTP500 is POST /v1/events with batches of 500, durable
// (fsync always, group commit), from parallel clients.
func BenchmarkEventsHTTP500(b *testing.B) {
	n := startNode(b, Config{})
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]client.Event, 500)
		for pb.Next() {
			for j := range evs {
				evs[j] = client.Event{EventID: fmt.Sprintf("e%d", seq.Add(1)), Type: client.TypeImpression, UserID: "u000001", ItemID: "i00001", Channel: "web", Timestamp: time.Now()}
			}
			if _, err := n.c.SendEvents(b.Context(), evs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}
