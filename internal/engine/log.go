package engine

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
)

// logDecision writes the decision log line: INFO for a sampled share of
// normal decisions, WARN for every fallback. It carries what the model saw,
// with nulls shown as null, and never the raw user id.
func (e *Engine) logDecision(ctx context.Context, d *Decision) {
	level := slog.LevelInfo
	if d.Fallback != ReasonNone {
		level = slog.LevelWarn
	} else if !e.sampled(d.RequestID) {
		return
	}
	if !e.cfg.Logger.Enabled(ctx, level) {
		return
	}
	feats := make([]any, 0, len(d.Features))
	for _, name := range sortedKeys(d.Features) {
		if v := d.Features[name]; v != nil {
			feats = append(feats, slog.String(name, *v))
		} else {
			feats = append(feats, slog.Any(name, nil))
		}
	}
	items := make([]any, 0, len(d.Items))
	for _, it := range d.Items {
		items = append(items, slog.Group(it.ItemID, slog.Float64("score", round4(it.Score)), slog.String("reason", it.Reason)))
	}
	msg := "decision"
	if d.Fallback != ReasonNone {
		msg = "decision fallback"
	}
	e.cfg.Logger.LogAttrs(ctx, level, msg,
		slog.String("request_id", d.RequestID),
		slog.String("user_hash", d.UserHash),
		slog.String("variant", d.Variant),
		slog.String("model_version", d.ModelVersion),
		slog.String("channel", d.Channel),
		slog.Bool("known_user", d.KnownUser),
		slog.String("segment", d.Segment),
		slog.Group("features", feats...),
		slog.Int("candidates", d.Candidates),
		slog.Float64("confidence", round4(d.Confidence)),
		slog.Group("items", items...),
		slog.String("fallback_reason", string(d.Fallback)),
		slog.String("fallback_detail", d.FallbackDetail),
		slog.Duration("duration", d.Duration),
	)
}

func (e *Engine) sampled(requestID string) bool {
	r := e.cfg.DecisionLogRatio
	if r <= 0 {
		return false
	}
	if r >= 1 {
		return true
	}
	return float64(maphash.String(e.idSeed, requestID)) < r*math.MaxUint64
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

func sortedKeys(m map[string]*string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: a handful of keys
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
