package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/features"
	"github.com/sightline/sightline/internal/learn"
)

// The node's catalog serves DELETE /v1/users/{user_id}.
var _ api.Eraser = catalog{}

// EraseUser erases the user id on this node and, through the event
// stream, on every node:
//
//   - the profile and activity in the feature store (memory, with an erase
//     entry in the journal so a restart does not replay the profile back;
//     or Redis, shared by the cluster);
//   - this node's recent decisions of the user;
//   - an erasure record ([event.Erasure]) on the event bus, keyed like the
//     user's events: the activity writer (this node, or a cluster's
//     trainer) applies it in order with the user's events, erasing again
//     the activity of events accepted before it but applied after, and a
//     replay of the log after a restart erases again what a snapshot older
//     than the erasure holds; API nodes drop their recent decisions of the
//     user and a trainer its cached features when they read it.
//
// Each step is idempotent, so a retry after an error completes the
// erasure.
func (c catalog) EraseUser(ctx context.Context, id string) (api.UserErasure, error) {
	n := c.n
	if err := n.journal.Append(features.JournalEntry{Erase: id}); err != nil {
		return api.UserErasure{}, fmt.Errorf("journal the erasure: %w", err)
	}
	e, err := n.store.EraseUser(ctx, id)
	if err != nil {
		return api.UserErasure{}, fmt.Errorf("erase from the feature store: %w", err)
	}
	if err := n.journal.Sync(); err != nil {
		return api.UserErasure{}, fmt.Errorf("journal the erasure: %w", err)
	}
	at := n.cfg.Now()
	dropped := n.eraseDecisions(id, at)
	rec := event.Event{ID: erasureID(), Type: event.Erasure, UserID: id, Timestamp: at.UTC()}
	if _, err := n.log.Append(ctx, []event.Event{rec}); err != nil {
		return api.UserErasure{}, fmt.Errorf("publish the erasure record: %w", err)
	}
	return api.UserErasure{Profile: e.Profile, Activity: e.Activity, Decisions: dropped}, nil
}

// eraseDecisions drops the node's recent decisions of the user id made up
// to at, and returns how many.
func (n *Node) eraseDecisions(id string, at time.Time) int {
	return n.engine.Ring().EraseUser(n.tel.Pseudonymize(id), at)
}

// erasures is the event-path stage of a node of a cluster that applies
// the erasure records of the stream to its recent decisions.
func (n *Node) erasures(from offsets) learn.Stage {
	return learn.Stage{H: learn.NewErasureHandler(func(id string, at time.Time) { n.eraseDecisions(id, at) }), From: from}
}

// erasureID is a fresh event id for an erasure record: random, so that no
// client's event id and no other erasure (of the same user, later) is
// taken for a duplicate of it by the bus.
func erasureID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "erasure-" + hex.EncodeToString(b[:])
}
