package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/app"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
	"github.com/sightline/sightline/internal/rollout"
	"github.com/sightline/sightline/internal/sim"
)

// The model-release game days: a challenger model is registered for a
// guarded rollout after the champion has learned for a while.
const (
	// BadRelease's challenger is the champion with its weights broken for
	// one segment (trained to invert that segment's tastes, as an ETL bug
	// that swapped its labels would): the guardrails must roll it back
	// before the 25% step.
	BadRelease = "bad-model-release"
	// GoodRelease's challenger is the champion trained further on more
	// ground-truth data: it must be promoted.
	GoodRelease = "good-model-release"
	// SameRelease's challenger is a copy of the champion: the control run,
	// which must not be rolled back.
	SameRelease = "same-model-release"
)

// ReleaseNames lists the model-release drills.
var ReleaseNames = []string{BadRelease, GoodRelease, SameRelease}

// brokenSegment is the segment BadRelease's challenger is broken for.
const brokenSegment = "casual"

// ReleaseConfig configures RunRelease. The zero value of every field means
// its default.
type ReleaseConfig struct {
	// Seed makes the world, the traffic and the clicks reproducible.
	Seed int64
	// WarmUp is the simulated time the champion learns before the
	// challenger is registered (default 20m).
	WarmUp time.Duration
	// Rate is the recommendation requests per simulated second (default 32).
	Rate int
	// Steps and StepHold are the rollout's (defaults 5%, 25%, 50% and
	// 10m); MaxWait the last step's (default 20m).
	Steps    []float64
	StepHold time.Duration
	MaxWait  time.Duration
	// Users, Items and NewUserShare shape the world (defaults 20,000, 2,000
	// and 0.35).
	Users, Items int
	NewUserShare float64
	// DataDir holds the node's state; empty uses a temporary directory.
	DataDir string
	// Progress, if set, receives a line per simulated 10 minutes.
	Progress io.Writer
}

func (c ReleaseConfig) withDefaults() ReleaseConfig {
	if c.WarmUp <= 0 {
		c.WarmUp = 20 * time.Minute
	}
	if c.Rate <= 0 {
		c.Rate = 32
	}
	if c.Steps == nil {
		c.Steps = rollout.DefaultSteps
	}
	if c.StepHold <= 0 {
		c.StepHold = 10 * time.Minute
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 20 * time.Minute
	}
	if c.Users <= 0 {
		c.Users = 20_000
	}
	if c.Items <= 0 {
		c.Items = 2_000
	}
	if c.NewUserShare == 0 {
		c.NewUserShare = 0.35
	}
	return c
}

// ReleaseReport is the outcome of a model-release drill.
type ReleaseReport struct {
	Drill string `json:"drill"`
	Seed  int64  `json:"seed"`
	// ChallengerVersion is the challenger's model version.
	ChallengerVersion string `json:"challenger_version"`
	// Outcome is the rollout's last stage: promoted, rolled_back, or canary
	// when the drill ended undecided. Reason and Detail are its last
	// transition's.
	Outcome rollout.Stage `json:"outcome"`
	Reason  string        `json:"reason"`
	Detail  string        `json:"detail"`
	// DecidedAfter is the simulated time from registration to the outcome.
	DecidedAfter time.Duration `json:"decided_after_ns"`
	// MaxShare is the largest share of the champion's users the challenger
	// reached.
	MaxShare float64 `json:"max_share"`
	// UsersExposed is the users the challenger served, UsersServed every
	// user served since it was registered, ExposedShare their ratio.
	UsersExposed int     `json:"users_exposed"`
	UsersServed  int     `json:"users_served"`
	ExposedShare float64 `json:"exposed_share"`
	// CTR of the champion's and the challenger's answers since the
	// challenger was registered, as the simulated users clicked.
	CTRChampion   float64 `json:"ctr_champion"`
	CTRChallenger float64 `json:"ctr_challenger"`
	// Timeline is the rollout's transitions.
	Timeline []rollout.Transition `json:"timeline"`
	Requests int64                `json:"requests"`
	Elapsed  time.Duration        `json:"elapsed_ns"`
}

// RunRelease runs the named model-release drill: a node on an accelerated
// clock learns from simulated users for WarmUp, then a challenger built
// from its model is registered through the admin API and the simulated
// users keep coming, with the guardrails checked every simulated minute,
// until the rollout ends (or its last step's MaxWait passes).
func RunRelease(ctx context.Context, name string, cfg ReleaseConfig) (*ReleaseReport, error) {
	if !slices.Contains(ReleaseNames, name) {
		return nil, fmt.Errorf("%w %q: want one of %v", ErrUnknown, name, ReleaseNames)
	}
	cfg = cfg.withDefaults()
	wallStart := time.Now()
	world := sim.NewWorld(sim.WorldConfig{Seed: cfg.Seed, Users: cfg.Users, Items: cfg.Items, NewUserShare: cfg.NewUserShare})
	const token = "drill-admin-token"
	sg, err := startStage(ctx, "sightline-release-", cfg.DataDir, world, app.Config{
		AdminToken: token,
		// The drill checks the guardrails each simulated minute itself.
		Rollout: rollout.Config{Steps: cfg.Steps, StepHold: cfg.StepHold, MaxWait: cfg.MaxWait, CheckEvery: 24 * time.Hour},
	})
	if err != nil {
		return nil, err
	}
	defer sg.close()
	node, clock, start := sg.node, sg.clock, sg.start
	dataDir := sg.dir
	d := sg.driver(cfg.Seed)
	second := func(t time.Duration) error {
		clock.Advance(time.Second)
		if err := d.step(ctx, cfg.Rate); err != nil {
			return err
		}
		if err := node.WaitApplied(ctx); err != nil {
			return err
		}
		if t%time.Minute == 0 {
			node.Engine().Index().Refresh()
		}
		if cfg.Progress != nil && (t+time.Second)%(10*time.Minute) == 0 {
			fmt.Fprintf(cfg.Progress, "t=%v requests=%d ctr[ftrl]=%.4f\n", t+time.Second, d.requests, d.ctr())
		}
		return nil
	}
	t := time.Duration(0)
	for ; t < cfg.WarmUp; t += time.Second {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := second(t); err != nil {
			return nil, err
		}
	}

	// The challenger, from a snapshot of the champion.
	path := filepath.Join(dataDir, "challenger.snap")
	if err := buildChallenger(ctx, node.Handler(), token, dataDir, name, world, cfg.Seed, path); err != nil {
		return nil, err
	}
	rep := &ReleaseReport{Drill: name, Seed: cfg.Seed}
	body, err := admin(ctx, node.Handler(), token, "/admin/rollouts", `{"source":`+strconv.Quote(path)+`}`)
	if err != nil {
		return nil, err
	}
	var st rollout.State
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("drill: rollout state: %w", err)
	}
	rep.ChallengerVersion, rep.MaxShare = st.Version, st.Share
	registered := t
	exposed, all := map[string]bool{}, map[string]bool{}
	var imps, clicks [2]int64
	d.served = func(user, variant string, cl []bool) {
		all[user] = true
		a := -1
		switch variant {
		case "ftrl":
			a = 0
		case "challenger":
			a = 1
			exposed[user] = true
		}
		if a < 0 {
			return
		}
		imps[a] += int64(len(cl))
		for _, ok := range cl {
			if ok {
				clicks[a]++
			}
		}
	}
	ro := node.Rollout()
	limit := registered + cfg.ShadowAndSteps() + cfg.MaxWait + 2*time.Minute
	for ; t < limit && ro.Live(); t += time.Second {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := second(t); err != nil {
			return nil, err
		}
		if (t+time.Second-registered)%time.Minute == 0 {
			ro.Check(ctx)
			rep.MaxShare = max(rep.MaxShare, ro.State().Share)
		}
	}
	st = ro.State()
	rep.Outcome, rep.Timeline, rep.Requests = st.Stage, st.Timeline, d.requests
	if n := len(st.Timeline); n > 0 {
		last := st.Timeline[n-1]
		rep.Reason, rep.Detail = last.Reason, last.Detail
		rep.DecidedAfter = last.At.Sub(start) - registered
	}
	rep.UsersExposed, rep.UsersServed = len(exposed), len(all)
	if len(all) > 0 {
		rep.ExposedShare = float64(len(exposed)) / float64(len(all))
	}
	if imps[0] > 0 {
		rep.CTRChampion = float64(clicks[0]) / float64(imps[0])
	}
	if imps[1] > 0 {
		rep.CTRChallenger = float64(clicks[1]) / float64(imps[1])
	}
	rep.Elapsed = time.Since(wallStart)
	return rep, nil
}

// ShadowAndSteps is the time the rollout's steps take when nothing fails.
func (c ReleaseConfig) ShadowAndSteps() time.Duration {
	return time.Duration(len(c.Steps)) * c.StepHold
}

// buildChallenger writes the drill's challenger to path: the champion's
// model (from a snapshot the node takes now) as is, trained further on
// ground truth, or broken for one segment.
func buildChallenger(ctx context.Context, h http.Handler, token, dataDir, name string, world *sim.World, seed int64, path string) error {
	if _, err := admin(ctx, h, token, "/admin/snapshot", ""); err != nil {
		return err
	}
	m, _, err := model.LoadFile(filepath.Join(dataDir, "model.snap"), model.Config{})
	if err != nil {
		return fmt.Errorf("drill: read the champion back: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc4a1))
	users := world.Users()
	switch name {
	case BadRelease:
		// Teach the model that the segment's users click what they like
		// least: their best items are labelled negative, random ones
		// positive half the time.
		var seg []int
		for i := range users {
			if users[i].Segment == brokenSegment {
				seg = append(seg, i)
			}
		}
		if len(seg) == 0 {
			return fmt.Errorf("drill: the world has no %q users", brokenSegment)
		}
		for range 40_000 {
			i := seg[rng.IntN(len(seg))]
			u := &users[i]
			ch := world.PickChannel(rng, i)
			x := &model.Context{User: *u, Channel: ch, Hour: rng.IntN(24)}
			for _, k := range world.Oracle(u, ch, 5) {
				m.Learn(x, *world.Item(k), model.Negative)
			}
			it := world.Item(rng.IntN(len(world.Items())))
			lb := model.Negative
			if rng.IntN(2) == 0 {
				lb = model.Positive
			}
			m.Learn(x, *it, lb)
		}
	case GoodRelease:
		// More data: the best items and random ones for random users,
		// labelled by the ground truth.
		for range 40_000 {
			i := rng.IntN(len(users))
			u := &users[i]
			ch := world.PickChannel(rng, i)
			x := &model.Context{User: *u, Channel: ch, Hour: rng.IntN(24)}
			learn := func(it *event.Item, k int) {
				lb := model.Negative
				if rng.Float64() < world.ClickProbAt(u, it, ch, k) {
					lb = model.Positive
				}
				m.Learn(x, *it, lb)
			}
			for k, j := range world.Oracle(u, ch, 5) {
				learn(world.Item(j), k)
			}
			learn(world.Item(rng.IntN(len(world.Items()))), 5)
		}
	}
	return m.SaveFile(path, model.SnapshotMeta{})
}

// admin posts body to the admin route path of h and returns the answer's
// body; a status of 300 or more is an error.
func admin(ctx context.Context, h http.Handler, token, path, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://drill.invalid"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		return nil, fmt.Errorf("drill: POST %s: %d %s", path, rec.Code, rec.Body.String())
	}
	return rec.Body.Bytes(), nil
}

// WriteTimeline prints the drill as a human timeline.
func (r *ReleaseReport) WriteTimeline(w io.Writer) {
	fmt.Fprintf(w, "drill %s (seed %d): challenger %s, %d requests in %v\n", r.Drill, r.Seed, r.ChallengerVersion, r.Requests, r.Elapsed.Round(time.Millisecond))
	var at0 time.Time
	for i, tr := range r.Timeline {
		if i == 0 {
			at0 = tr.At
		}
		fmt.Fprintf(w, "  R+%-8v %-11s → %-11s share %3.0f%%  %s: %s\n", tr.At.Sub(at0), tr.From, tr.To, 100*tr.Share, tr.Reason, tr.Detail)
	}
	fmt.Fprintf(w, "  outcome: %s %v after registration; the challenger reached %.0f%% of the champion's users and served %d of %d users (%.1f%%)\n",
		r.Outcome, r.DecidedAfter, 100*r.MaxShare, r.UsersExposed, r.UsersServed, 100*r.ExposedShare)
	fmt.Fprintf(w, "  CTR since registration: champion %.4f, challenger %.4f\n", r.CTRChampion, r.CTRChallenger)
}
