// Package sim owns Sightline's synthetic world and its traffic generator.
//
// A [World] is a deterministic population of users and a catalog of items
// with a hidden ground truth: [World.ClickProb] says how likely a user is to
// click an item on a channel. The ground truth has strong personal
// structure (the user's age bucket dominates which categories they like), so
// a model that learns user-attribute × category crosses beats plain
// popularity by a wide margin. [World.WriteUsersNDJSON],
// [World.WriteItemsNDJSON] and [World.Load] put the world into a node.
//
// A [Traffic] drives a node over HTTP through the public client: an
// open-loop scheduler issues recommendation requests at a fixed rate, emits
// an impression for each returned item and draws clicks from the ground
// truth with position bias, and sends the events in batches. Its
// [TrafficReport] gives requests, errors, drops, client-side latency and
// CTR per variant.
//
// The package leaves serving, learning and measuring on the server side to
// the node it drives; fault drills that need a node in process live here too
// but build it through internal/app.
package sim
