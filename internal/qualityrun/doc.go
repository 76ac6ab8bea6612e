// Package qualityrun measures how fast and how far Sightline's online
// learning gets on the simulated world: the learning curve of each model
// variant from a cold start.
//
// [Run] starts, for each variant and seed, a fresh node (built by
// internal/app, served in process) on a simulated clock, loads the world of
// internal/sim through the API and drives it at the demo's default rate
// (200 requests per simulated second) with the demo's users: the
// traffic generator's user and channel draws, its clicks from the ground
// truth with position bias, its events sent every simulated 100 ms (the
// demo's flush interval). The node learns between two sends exactly as
// much as it would in real time (every sent event is applied before the
// next simulated step), so a simulated minute is worth a minute of the
// demo, however fast the machine runs it.
//
// Each minute it records the CTR of the variant's answers, their expected
// CTR under the ground truth and the oracle CTR (the expected CTR of the
// ground truth's best items for the same requests); at the end, the log
// loss and calibration of the scores it served. The [Report] renders as
// Markdown (docs/quality.md) and as an SVG chart.
//
// The package leaves serving and learning to the node and the world to
// internal/sim; it starts goroutines only inside Run, and all of them have
// ended when Run returns.
package qualityrun
