package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// The DuckDB read-back test proves that a standard tool reads the files as
// written: the same rows, the same types, nulls as nulls. It runs the query
// tool of tools/duckdb, which scripts/test builds and names in
// SIGHTLINE_TEST_DUCKDB.

// duckColumn is a result column as the tool prints it.
type duckColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// duckQuery runs sql with the DuckDB tool and returns the columns and rows.
func duckQuery(t *testing.T, sql string) ([]duckColumn, []map[string]any) {
	t.Helper()
	bin := os.Getenv("SIGHTLINE_TEST_DUCKDB")
	if bin == "" {
		t.Skip("SIGHTLINE_TEST_DUCKDB not set (scripts/test builds tools/duckdb and sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, sql)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb %q: %v\n%s", sql, err, stderr.String())
	}
	var cols []duckColumn
	var rows []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var line struct {
			Columns []duckColumn   `json:"columns"`
			Row     map[string]any `json:"row"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("duckdb printed %q: %v", sc.Text(), err)
		}
		if line.Columns != nil {
			cols = line.Columns
		} else {
			rows = append(rows, line.Row)
		}
	}
	return cols, rows
}

// parquetGlob is the read_parquet call of kind's files under dir, with the
// partition columns typed.
func parquetGlob(dir, kind string) string {
	return fmt.Sprintf("read_parquet('%s/**/%s-*.parquet', hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER})", dir, kind)
}

// ctrByVariantByHour is docs/decision-log.md's query: CTR of each variant
// in each hour of the decisions, from the events joined to them (deduped
// by event id: delivery is at least once).
const ctrByVariantByHour = `
WITH d AS (
  SELECT request_id, variant, date, hour FROM {decisions}
), e AS (
  SELECT DISTINCT event_id, request_id, type FROM {events}
)
SELECT d.date, d.hour, d.variant,
       count(*) FILTER (WHERE e.type = 'impression') AS impressions,
       count(*) FILTER (WHERE e.type = 'click') AS clicks,
       clicks / nullif(impressions, 0) AS ctr
FROM d JOIN e USING (request_id)
GROUP BY ALL
ORDER BY ALL`

// ageNullRateByHour is docs/decision-log.md's query for the talk's
// incident: the share of decisions, among those whose feature fetch
// succeeded, that saw user_age_bucket null, hour by hour.
const ageNullRateByHour = `
SELECT date, hour,
       count(*) AS decisions,
       count(*) FILTER (WHERE user_age_bucket IS NULL) / count(*) AS age_null_rate
FROM {decisions}
WHERE fallback_reason NOT IN ('feature_store_error', 'feature_store_timeout')
GROUP BY ALL
ORDER BY ALL`

// fillQuery replaces {decisions} and {events} in q by the files under dir.
func fillQuery(q, dir string) string {
	return strings.NewReplacer("{decisions}", parquetGlob(dir, kindDecisions), "{events}", parquetGlob(dir, kindEvents)).Replace(q)
}

func TestDuckDBReadBack(t *testing.T) {
	if os.Getenv("SIGHTLINE_TEST_DUCKDB") == "" {
		t.Skip("SIGHTLINE_TEST_DUCKDB not set (scripts/test builds tools/duckdb and sets it)")
	}
	rc, err := newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Node: "n1"})
	stop := start(t, w)
	users := []string{"alice", "newbie", "stranger-1", "stranger-2", "stranger-3", "broken", "newbie", "stranger-4"}
	var wantDec []Decision
	var wantEv []Event
	type key struct {
		hour    int
		variant string
	}
	ctr := map[key][2]int{}   // impressions, clicks
	nulls := map[int][2]int{} // decisions with features, age null
	base := time.Date(2026, 3, 1, 9, 58, 0, 345678000, time.UTC)
	for i := range 48 {
		user := users[i%len(users)]
		at := base.Add(time.Duration(i) * 7 * time.Second) // 09:58 to 10:03
		d, rec, err := rc.decide(fmt.Sprintf("r%03d", i), user, at, i%5 == 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Record(rec)
		wantDec = append(wantDec, wantRow(d, "n1", testActivity[user].RecentCategories))
		h := at.Hour()
		if d.Fallback != engine.ReasonFeatureStoreError {
			n := nulls[h]
			n[0]++
			if d.Features[event.AttrAgeBucket] == nil {
				n[1]++
			}
			nulls[h] = n
		}
		c := ctr[key{h, d.Variant}]
		for j, it := range d.Items {
			evs := []*event.Event{{ID: fmt.Sprintf("%s-i%d", d.RequestID, j), Type: event.Impression, UserID: user,
				ItemID: it.ItemID, RequestID: d.RequestID, Timestamp: at.Add(time.Second)}}
			c[0]++
			if (i+j)%3 == 0 {
				evs = append(evs, &event.Event{ID: fmt.Sprintf("%s-c%d", d.RequestID, j), Type: event.Click, UserID: user,
					ItemID: it.ItemID, RequestID: d.RequestID, Timestamp: at.Add(3 * time.Second), DwellMS: int64(100 * j)})
				c[1]++
			}
			for _, ev := range evs {
				w.Event(ev)
				wantEv = append(wantEv, *eventRow(ev, time.Time{}))
			}
			if i == 7 && j == 0 {
				w.Event(evs[0]) // redelivered: counted once by the query
			}
		}
		ctr[key{h, d.Variant}] = c
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	t.Run("decisions", func(t *testing.T) {
		cols, rows := duckQuery(t, fmt.Sprintf("SELECT * FROM %s ORDER BY request_id", parquetGlob(dir, kindDecisions)))
		slot := `STRUCT("item_id" VARCHAR, "category" VARCHAR, "score" DOUBLE, "reason" VARCHAR, "propensity" DOUBLE)[]`
		cand := `STRUCT("item_id" VARCHAR, "category" VARCHAR, "score" DOUBLE, "popularity" DOUBLE)[]`
		wantCols := []duckColumn{
			{"request_id", "VARCHAR"}, {"time", "TIMESTAMPTZ"}, {"user_hash", "VARCHAR"}, {"known_user", "BOOLEAN"},
			{"node", "VARCHAR"}, {"channel", "VARCHAR"}, {"variant", "VARCHAR"}, {"model_version", "VARCHAR"},
			{"user_age_bucket", "VARCHAR"}, {"user_segment", "VARCHAR"}, {"user_region", "VARCHAR"}, {"user_device", "VARCHAR"},
			{"context_hour", "INTEGER"}, {"recent_categories", "VARCHAR[]"}, {"candidates", "INTEGER"}, {"eligible", "INTEGER"},
			{"explore", "DOUBLE"}, {"explore_top", "INTEGER"}, {"confidence", "DOUBLE"}, {"fallback_reason", "VARCHAR"},
			{"items", slot}, {"pool", cand}, {"duration_ns", "BIGINT"}, {"trace_id", "VARCHAR"}, {"trace_sampled", "BOOLEAN"},
			{"shadow_model_version", "VARCHAR"}, {"shadow_items", `STRUCT("item_id" VARCHAR, "score" DOUBLE)[]`},
			{"shadow_error", "VARCHAR"}, {"shadow_duration_ns", "BIGINT"},
			{"date", "DATE"}, {"hour", "INTEGER"},
		}
		if diff := cmp.Diff(wantCols, cols); diff != "" {
			t.Errorf("decision columns (-want +got):\n%s", diff)
		}
		var want []map[string]any
		for _, d := range wantDec {
			want = append(want, duckDecision(d))
		}
		if diff := cmp.Diff(want, normalize(t, rows)); diff != "" {
			t.Errorf("decision rows (-want +got):\n%s", diff)
		}
	})

	t.Run("events", func(t *testing.T) {
		cols, rows := duckQuery(t, fmt.Sprintf("SELECT DISTINCT * FROM %s ORDER BY event_id", parquetGlob(dir, kindEvents)))
		wantCols := []duckColumn{
			{"request_id", "VARCHAR"}, {"event_id", "VARCHAR"}, {"type", "VARCHAR"}, {"time", "TIMESTAMPTZ"},
			{"item_id", "VARCHAR"}, {"dwell_ms", "BIGINT"}, {"date", "DATE"}, {"hour", "INTEGER"},
		}
		if diff := cmp.Diff(wantCols, cols); diff != "" {
			t.Errorf("event columns (-want +got):\n%s", diff)
		}
		want := map[string]map[string]any{}
		for _, e := range wantEv {
			want[e.EventID] = map[string]any{
				"request_id": e.RequestID, "event_id": e.EventID, "type": e.Type, "time": e.Time.Truncate(time.Microsecond),
				"item_id": e.ItemID, "dwell_ms": float64(e.DwellMS), "date": e.Time.Format("2006-01-02T00:00:00Z"), "hour": float64(e.Time.Hour()),
			}
		}
		got := map[string]map[string]any{}
		for _, r := range normalize(t, rows) {
			got[r["event_id"].(string)] = r
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event rows (-want +got):\n%s", diff)
		}
	})

	t.Run("CTR by variant by hour", func(t *testing.T) {
		_, rows := duckQuery(t, fillQuery(ctrByVariantByHour, dir))
		got := map[key][2]int{}
		for _, r := range rows {
			k := key{int(r["hour"].(float64)), r["variant"].(string)}
			got[k] = [2]int{int(r["impressions"].(float64)), int(r["clicks"].(float64))}
			if want := r["clicks"].(float64) / r["impressions"].(float64); r["ctr"].(float64) != want {
				t.Errorf("ctr of %v = %v, want %v", k, r["ctr"], want)
			}
		}
		if diff := cmp.Diff(ctr, got); diff != "" {
			t.Errorf("impressions and clicks by hour and variant (-want +got):\n%s", diff)
		}
		if len(got) < 4 {
			t.Errorf("%d hour×variant groups, want 2 hours × 2 variants", len(got))
		}
	})

	t.Run("age null rate by hour", func(t *testing.T) {
		_, rows := duckQuery(t, fillQuery(ageNullRateByHour, dir))
		got := map[int][2]int{}
		for _, r := range rows {
			n := r["decisions"].(float64)
			got[int(r["hour"].(float64))] = [2]int{int(n), int(r["age_null_rate"].(float64)*n + 0.5)}
		}
		if diff := cmp.Diff(nulls, got); diff != "" {
			t.Errorf("decisions and null ages by hour (-want +got):\n%s", diff)
		}
	})
}

// duckDecision is the row DuckDB should return for d, as the tool prints
// it and JSON decodes it (numbers are float64), with the partition columns.
func duckDecision(d Decision) map[string]any {
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	recent := []any{}
	for _, c := range d.RecentCategories {
		recent = append(recent, c)
	}
	items := []any{}
	for _, s := range d.Items {
		items = append(items, map[string]any{"item_id": s.ItemID, "category": s.Category, "score": s.Score, "reason": s.Reason, "propensity": s.Propensity})
	}
	pool := []any{}
	for _, c := range d.Pool {
		pool = append(pool, map[string]any{"item_id": c.ItemID, "category": c.Category, "score": c.Score, "popularity": c.Popularity})
	}
	shadow := []any{}
	for _, s := range d.ShadowItems {
		shadow = append(shadow, map[string]any{"item_id": s.ItemID, "score": s.Score})
	}
	return map[string]any{
		"shadow_model_version": d.ShadowModelVersion, "shadow_items": shadow,
		"shadow_error": d.ShadowError, "shadow_duration_ns": float64(d.ShadowDurationNS),
		"request_id": d.RequestID, "time": d.Time, "user_hash": d.UserHash, "known_user": d.KnownUser,
		"node": d.Node, "channel": d.Channel, "variant": d.Variant, "model_version": d.ModelVersion,
		"user_age_bucket": str(d.UserAgeBucket), "user_segment": str(d.UserSegment),
		"user_region": str(d.UserRegion), "user_device": str(d.UserDevice),
		"context_hour": float64(d.Hour), "recent_categories": recent,
		"candidates": float64(d.Candidates), "eligible": float64(d.Eligible),
		"explore": d.Explore, "explore_top": float64(d.ExploreTop), "confidence": d.Confidence,
		"fallback_reason": d.FallbackReason, "items": items, "pool": pool,
		"duration_ns": float64(d.DurationNS), "trace_id": d.TraceID, "trace_sampled": d.TraceSampled,
		"date": d.Time.Format("2006-01-02T00:00:00Z"), "hour": float64(d.Time.Hour()),
	}
}

// normalize parses the time column of DuckDB's rows into time.Time.
func normalize(t *testing.T, rows []map[string]any) []map[string]any {
	t.Helper()
	for _, r := range rows {
		s, ok := r["time"].(string)
		if !ok {
			t.Fatalf("time column = %#v, want a timestamp", r["time"])
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		r["time"] = tm.UTC()
	}
	return rows
}
