package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/client"
)

// sendBatch posts evs once and returns the number of duplicates when the
// node acknowledged the whole batch (202), or an error.
func sendBatch(hc *http.Client, base string, evs []client.Event) (int, error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Post(base+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var r struct {
		Accepted   int `json:"accepted"`
		Duplicates int `json:"duplicates"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	if r.Accepted != len(evs) {
		return 0, fmt.Errorf("accepted %d of %d", r.Accepted, len(evs))
	}
	return r.Duplicates, nil
}

// TestKill9Cycles kills a node in a child process with SIGKILL 20 times,
// each at a random moment while a client streams event batches and the
// node snapshots every 150ms. After each restart the client resends the
// batch that was in flight (as a client retries an unanswered request;
// event ids make it safe), and the node must hold every acknowledged
// event exactly once: as many events in the log as distinct acknowledged
// ids, and as many model updates as events.
func TestKill9Cycles(t *testing.T) {
	const cycles = 20
	began := time.Now()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	seed := rng.Uint64()
	t.Logf("kill points drawn with seed %d", seed)
	rng = rand.New(rand.NewPCG(seed, 15))

	cmd, base := startChild(t, dir)
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	w := smallWorld()
	if err := w.Load(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the index publishes every 200ms
	// Batches built up front against the first node: the stream of every
	// cycle draws from them in order.
	var batches [][]client.Event
	for k := range 150 {
		batches = append(batches, recommendAndEvents(t, c, w, k, 4))
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	acked := map[string]bool{}
	ack := func(evs []client.Event) {
		for _, ev := range evs {
			acked[ev.EventID] = true
		}
	}
	var pending []client.Event // sent when the node was killed, unanswered
	next := 0
	kills := 0
	// resent counts the batches in flight at a kill, resentLogged those
	// the log already held (the kill fell between the append and the
	// answer), restored the restarts that began from a snapshot.
	resent, resentLogged, restored := 0, 0, 0
	for cycle := 0; ; cycle++ {
		if cycle > 0 {
			cmd, base = startChild(t, dir)
		}
		if pending != nil {
			dups, err := sendBatch(hc, base, pending)
			if err != nil {
				t.Fatalf("cycle %d: resending the batch in flight at the kill: %v", cycle, err)
			}
			resent++
			if dups > 0 {
				resentLogged++
			}
			ack(pending)
		}
		s := waitApplied(t, base)
		if s.Restore.ModelSnapshot != "" {
			restored++
		}
		if s.EventsLogged != uint64(len(acked)) || s.ModelUpdates != s.EventsLogged {
			t.Fatalf("after %d kills: %d events logged, %d model updates; want the %d acknowledged, each applied once (model snapshot %q at offset %d, features at %d)",
				kills, s.EventsLogged, s.ModelUpdates, len(acked), s.Restore.ModelSnapshot, s.Restore.ModelOffset, s.Restore.FeatureOffset)
		}
		if cycle == cycles {
			break
		}
		// Stream batches until the kill.
		type result struct {
			next    int
			pending []client.Event
			acked   [][]client.Event
			err     error
		}
		stop := make(chan struct{})
		done := make(chan result, 1)
		go func(next int) {
			var r result
			for {
				select {
				case <-stop:
					r.next = next
					done <- r
					return
				default:
				}
				evs := batches[next%len(batches)]
				if next >= len(batches) {
					// Later rounds reuse a batch under fresh ids.
					evs = renumber(evs, next/len(batches))
				}
				if _, err := sendBatch(hc, base, evs); err != nil {
					r.next, r.pending, r.err = next+1, evs, err
					done <- r
					return
				}
				r.acked = append(r.acked, evs)
				next++
			}
		}(next)
		time.Sleep(time.Duration(20+rng.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // the exit status is the SIGKILL
		kills++
		close(stop)
		r := <-done
		for _, evs := range r.acked {
			ack(evs)
		}
		next, pending = r.next, r.pending
		if len(r.acked) == 0 && pending == nil {
			t.Logf("cycle %d: no batch sent before the kill", cycle)
		}
	}
	t.Logf("%d kill -9 cycles in %v: %d events acknowledged, each applied once; %d batches in flight at a kill resent (%d of them already logged), %d restarts from a snapshot",
		kills, time.Since(began).Round(time.Millisecond), len(acked), resent, resentLogged, restored)
}

// renumber returns a copy of evs with ids made unique for round.
func renumber(evs []client.Event, round int) []client.Event {
	out := make([]client.Event, len(evs))
	for i, ev := range evs {
		ev.EventID = fmt.Sprintf("%s-round%d", ev.EventID, round)
		out[i] = ev
	}
	return out
}
