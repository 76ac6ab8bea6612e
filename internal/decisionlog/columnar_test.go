package decisionlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// The decisions files' encoder is checked against independent readers:
// parquet-go's and DuckDB read back exactly the random decisions written,
// of every shape (nulls, empty lists, long and non-ASCII strings, fallbacks
// without a pool) over many pages and row groups, and the files pass a
// structural check of their pages, statistics and page index.

// randString returns a random string: usually short, sometimes empty,
// long or non-ASCII (always valid UTF-8).
func randString(r *rand.Rand) string {
	const ascii = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	runes := []rune("éßøЖж日本語한국어🙂🚀\u00a0\u200b")
	n := r.IntN(12)
	switch r.IntN(40) {
	case 0, 1:
		return ""
	case 2:
		n = 100 + r.IntN(2000)
	}
	var b strings.Builder
	for range n {
		if r.IntN(8) == 0 {
			b.WriteRune(runes[r.IntN(len(runes))])
		} else {
			b.WriteByte(ascii[r.IntN(len(ascii))])
		}
	}
	return b.String()
}

// pick returns one of vals, or sometimes a random string (a new
// dictionary entry).
func pick(r *rand.Rand, vals ...string) string {
	if r.IntN(10) == 0 {
		return randString(r)
	}
	return vals[r.IntN(len(vals))]
}

// randFloat returns a finite float of some shape: 0, -0, small, large,
// a probability.
func randFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return -r.Float64() * 1e6
	case 3:
		return math.MaxFloat64 * r.Float64()
	case 4:
		return math.SmallestNonzeroFloat64
	default:
		return r.Float64()
	}
}

// randDecision returns a random decision row numbered i.
func randDecision(r *rand.Rand, i int) Decision {
	attr := func(vals ...string) *string {
		if r.IntN(4) == 0 {
			return nil
		}
		v := pick(r, vals...)
		return &v
	}
	d := Decision{
		RequestID:     fmt.Sprintf("%06d-%s", i, randString(r)),
		Time:          time.UnixMicro(946684800_000000 + r.Int64N(100*365*24*3600*1_000_000)).UTC(),
		UserHash:      randString(r),
		KnownUser:     r.IntN(2) == 0,
		Node:          pick(r, "api-1", "api-2", "nœud-3"),
		Channel:       pick(r, "web", "app", ""),
		Variant:       pick(r, "ftrl", "popularity", "ftrl-b"),
		ModelVersion:  pick(r, "ftrl-v7", "ftrl-v8", "pop"),
		UserAgeBucket: attr("18-24", "25-34", "35-44", "a bucket longer than sixteen bytes"),
		UserSegment:   attr("new", "regular", "vip", ""),
		UserRegion:    attr("eu", "na", "日本"),
		UserDevice:    attr("ios", "android", "web"),
		Hour:          int32(r.IntN(24)),
		Candidates:    int32(r.IntN(1000)),
		Eligible:      int32(r.IntN(1000)),
		Explore:       randFloat(r),
		ExploreTop:    int32(r.IntN(50)),
		Confidence:    randFloat(r),
		DurationNS:    r.Int64N(1<<53) - 1<<40,
		TraceSampled:  r.IntN(3) == 0,
	}
	if r.IntN(8) == 0 {
		d.Hour = int32(r.Uint32()) // any int32
		d.Candidates, d.Eligible = math.MaxInt32, math.MinInt32
	}
	if r.IntN(2) == 0 {
		d.TraceID = fmt.Sprintf("%032x", r.Uint64())
	}
	for range r.IntN(4) + r.IntN(2)*r.IntN(60) {
		d.RecentCategories = append(d.RecentCategories, pick(r, "c01", "c02", "c03", ""))
	}
	if r.IntN(6) == 0 {
		d.FallbackReason = pick(r, "feature_store_error", "feature_store_timeout", "model_timeout")
	}
	n := r.IntN(13)
	if r.IntN(20) == 0 {
		n = 0
	}
	for range n {
		d.Items = append(d.Items, Slot{ItemID: randString(r), Category: pick(r, "c01", "c02", "c03"), Score: randFloat(r),
			Reason: pick(r, "model", "explore", "popular"), Propensity: randFloat(r)})
	}
	if d.FallbackReason == "" {
		for range r.IntN(26) {
			d.Pool = append(d.Pool, Candidate{ItemID: randString(r), Category: pick(r, "c01", "c02", "c03"),
				Score: randFloat(r), Popularity: randFloat(r)})
		}
	}
	if r.IntN(3) == 0 { // a shadow challenger scored it (schema v2)
		d.ShadowModelVersion = "shadow-" + pick(r, "ftrl-v9", "challenger-2") // never "": none scored
		d.ShadowDurationNS = r.Int64N(1 << 30)
		if r.IntN(5) == 0 {
			d.ShadowError = pick(r, "model_timeout", "model_error")
		} else {
			for range r.IntN(13) {
				d.ShadowItems = append(d.ShadowItems, ShadowSlot{ItemID: randString(r), Score: randFloat(r)})
			}
		}
	}
	return d
}

// decoded returns what the writer's decoder makes of the record of
// decision row d: the decision, its model context and its features, in a
// random order among features the log does not keep.
func decoded(r *rand.Rand, d *Decision) (*engine.Decision, *model.Context, []engine.RecordFeature) {
	ed := &engine.Decision{
		RequestID: d.RequestID, Time: d.Time.Add(time.Duration(r.IntN(1000))), UserHash: d.UserHash,
		KnownUser: d.KnownUser, Segment: "ignored", Channel: d.Channel, Variant: d.Variant, ModelVersion: d.ModelVersion,
		Candidates: int(d.Candidates), Eligible: int(d.Eligible), Explore: d.Explore, ExploreTop: int(d.ExploreTop),
		Confidence: d.Confidence, Fallback: engine.Reason(d.FallbackReason), FallbackDetail: "ignored",
		Duration: time.Duration(d.DurationNS), TraceID: d.TraceID, SpanID: "ignored", TraceSampled: d.TraceSampled,
	}
	for _, s := range d.Items {
		ed.Items = append(ed.Items, engine.Item{ItemID: s.ItemID, Category: s.Category, Score: s.Score, Reason: s.Reason, Propensity: s.Propensity})
	}
	for _, c := range d.Pool {
		ed.Pool = append(ed.Pool, engine.PoolItem{ItemID: c.ItemID, Category: c.Category, Score: c.Score, Popularity: c.Popularity})
	}
	if d.ShadowModelVersion != "" {
		sh := &engine.Shadow{ModelVersion: d.ShadowModelVersion, Error: d.ShadowError, Duration: time.Duration(d.ShadowDurationNS)}
		for _, s := range d.ShadowItems {
			sh.Items = append(sh.Items, s.ItemID)
			sh.Scores = append(sh.Scores, s.Score)
		}
		ed.Shadow = sh
	}
	x := &model.Context{Hour: int(d.Hour), RecentCategories: d.RecentCategories, Channel: "ignored"}
	// Each name's features, shuffled name by name: a repeated name keeps
	// its order.
	var groups [][]engine.RecordFeature
	for _, f := range []struct {
		name string
		v    *string
	}{{event.AttrAgeBucket, d.UserAgeBucket}, {event.AttrSegment, d.UserSegment}, {event.AttrRegion, d.UserRegion}, {event.AttrDevice, d.UserDevice}} {
		var g []engine.RecordFeature
		switch {
		case f.v != nil:
			if r.IntN(5) == 0 { // a repeated name: the last one stands
				g = append(g, engine.RecordFeature{Name: f.name, Null: true})
			}
			g = append(g, engine.RecordFeature{Name: f.name, Value: *f.v})
		case r.IntN(2) == 0: // null, or missing
			g = append(g, engine.RecordFeature{Name: f.name, Null: true})
		}
		groups = append(groups, g)
	}
	if r.IntN(2) == 0 {
		groups = append(groups, []engine.RecordFeature{{Name: "user_favourite", Value: "x"}})
	}
	r.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	var feats []engine.RecordFeature
	for _, g := range groups {
		feats = append(feats, g...)
	}
	return ed, x, feats
}

// writeDecisionsFile writes rows as a decisions file at path with the
// columnar encoder, in row groups of rowGroup rows and pages of pageSize
// bytes, and returns the key-value metadata it wrote.
func writeDecisionsFile(t testing.TB, path string, rows []Decision, rowGroup, pageSize int, seed uint64) []format.KeyValue {
	t.Helper()
	tmpl, err := decisionsTemplate()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Config{Dir: t.TempDir(), Node: "writer-1", StoreRatio: 0.5})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newDecisionsFile(f, tmpl, rowGroup, pageSize)
	e.kv = w.metadata(kindDecisions)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range rows {
		d, x, feats := decoded(r, &rows[i])
		if err := e.add(d, x, feats, rows[i].Node); err != nil {
			t.Fatalf("add row %d: %v", i, err)
		}
	}
	if err := e.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return e.kv
}

// A property test: random decisions of every shape, over many pages and
// row groups, read back exactly by parquet-go and by DuckDB, whose filters
// on the columns with statistics (which it prunes row groups by) count
// what was written.
func TestColumnarRandom(t *testing.T) {
	for _, tc := range []struct {
		name               string
		rows               int
		rowGroup, pageSize int
		edit               func(d *Decision)
	}{
		{"one row", 1, 100, 0, nil},
		{"small pages and row groups", 1500, 400, 2 << 10, nil},
		{"tiny pages", 50, 20, 1, nil},
		{"default pages", 1200, 500, 0, nil},
		{"no features, items, pool or recent categories", 30, 20, 0, func(d *Decision) {
			d.UserAgeBucket, d.UserSegment, d.UserRegion, d.UserDevice = nil, nil, nil, nil
			d.Items, d.Pool, d.RecentCategories = nil, nil, nil
			d.FallbackReason = "feature_store_error"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 1))
			rows := make([]Decision, tc.rows)
			for i := range rows {
				rows[i] = randDecision(r, i)
				if tc.edit != nil {
					tc.edit(&rows[i])
				}
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "decisions-test-1.parquet")
			writeDecisionsFile(t, path, rows, tc.rowGroup, tc.pageSize, seed)

			diffRows(t, "parquet-go", rows, readDecisions(t, dir), cmpopts.EquateEmpty())
			checkFile(t, path, rows)

			if os.Getenv("SIGHTLINE_TEST_DUCKDB") == "" {
				return // checkDuckDB skips; the tests above stand
			}
			checkDuckDB(t, path, rows)
		})
	}
}

// diffRows fails t at the first row of got, read back by reader, that
// differs from want's (row by row, and diffed only when not deeply equal:
// a diff of the whole slices takes seconds).
func diffRows[T any](t *testing.T, reader string, want, got []T, opts ...cmp.Option) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if reflect.DeepEqual(want[i], got[i]) {
			continue
		}
		if diff := cmp.Diff(want[i], got[i], opts...); diff != "" {
			t.Fatalf("%s read back row %d (-written +read):\n%s", reader, i, diff)
		}
	}
	if len(want) != len(got) {
		t.Fatalf("%s read back %d rows, want %d", reader, len(got), len(want))
	}
}

// checkDuckDB reads the decisions file at path with DuckDB and compares
// its rows, and the counts of filters on columns with statistics, with
// rows.
func checkDuckDB(t *testing.T, path string, rows []Decision) {
	t.Helper()
	_, got := duckQuery(t, fmt.Sprintf("SELECT * EXCLUDE (file_row_number) FROM read_parquet('%s', file_row_number = true) ORDER BY file_row_number", path))
	var want []map[string]any
	for _, d := range rows {
		m := duckDecision(d)
		delete(m, "date")
		delete(m, "hour")
		want = append(want, m)
	}
	diffRows(t, "DuckDB", want, normalize(t, got))
	mid := rows[len(rows)/2]
	filters := []struct {
		where string
		match func(d *Decision) bool
	}{
		{fmt.Sprintf("variant = '%s'", strings.ReplaceAll(mid.Variant, "'", "''")), func(d *Decision) bool { return d.Variant == mid.Variant }},
		{"model_version = 'ftrl-v8'", func(d *Decision) bool { return d.ModelVersion == "ftrl-v8" }},
		{"user_age_bucket IS NULL", func(d *Decision) bool { return d.UserAgeBucket == nil }},
		{"user_region = '日本'", func(d *Decision) bool { return d.UserRegion != nil && *d.UserRegion == "日本" }},
		{"user_age_bucket = 'a bucket longer than sixteen bytes'", func(d *Decision) bool {
			return d.UserAgeBucket != nil && *d.UserAgeBucket == "a bucket longer than sixteen bytes"
		}},
		{fmt.Sprintf("time >= '%s'", mid.Time.Format(time.RFC3339Nano)), func(d *Decision) bool { return !d.Time.Before(mid.Time) }},
		{"fallback_reason = ''", func(d *Decision) bool { return d.FallbackReason == "" }},
		{"known_user AND trace_sampled", func(d *Decision) bool { return d.KnownUser && d.TraceSampled }},
		{"confidence < 0", func(d *Decision) bool { return d.Confidence < 0 }},
		{"context_hour BETWEEN 3 AND 7", func(d *Decision) bool { return d.Hour >= 3 && d.Hour <= 7 }},
		{"duration_ns < 0", func(d *Decision) bool { return d.DurationNS < 0 }},
	}
	// One query counts every filter's rows (each DuckDB run takes a while).
	var counts []string
	for i, f := range filters {
		counts = append(counts, fmt.Sprintf("count(*) FILTER (WHERE %s) AS f%d", f.where, i))
	}
	_, res := duckQuery(t, fmt.Sprintf("SELECT %s FROM read_parquet('%s')", strings.Join(counts, ", "), path))
	for i, f := range filters {
		want := 0
		for j := range rows {
			if f.match(&rows[j]) {
				want++
			}
		}
		if n := res[0][fmt.Sprintf("f%d", i)].(float64); int(n) != want {
			t.Errorf("DuckDB count WHERE %s = %v, want %d", f.where, n, want)
		}
	}
}

// checkFile checks the decisions file at path, which holds rows, as a
// Parquet file: the schema, column orders and metadata are those
// parquet-go writes for Decision; every page of every column chunk reads
// with parquet-go, its CRC matches, the offset index points at it; the
// chunks' statistics and the column index bound the values and count the
// nulls.
func checkFile(t *testing.T, path string, rows []Decision) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("parquet.OpenFile: %v", err)
	}
	md := pf.Metadata()
	ref := referenceFile(t)
	if diff := cmp.Diff(ref.Schema, md.Schema); diff != "" {
		t.Errorf("schema elements (-parquet-go +ours):\n%s", diff)
	}
	if diff := cmp.Diff(ref.ColumnOrders, md.ColumnOrders); diff != "" {
		t.Errorf("column orders (-parquet-go +ours):\n%s", diff)
	}
	if md.CreatedBy != ref.CreatedBy || md.Version != ref.Version {
		t.Errorf("created by %q version %d, parquet-go writes %q %d", md.CreatedBy, md.Version, ref.CreatedBy, ref.Version)
	}
	if diff := cmp.Diff(ref.KeyValueMetadata, md.KeyValueMetadata); diff != "" {
		t.Errorf("key-value metadata (-parquet-go +ours):\n%s", diff)
	}
	if md.NumRows != int64(len(rows)) {
		t.Errorf("file has %d rows, want %d", md.NumRows, len(rows))
	}
	if string(data[:4]) != "PAR1" || string(data[len(data)-4:]) != "PAR1" {
		t.Fatal("file does not begin and end with PAR1")
	}

	schema := parquet.SchemaOf(Decision{})
	paths := schema.Columns()
	for i, rg := range pf.RowGroups() {
		mrg := md.RowGroups[i]
		if mrg.Ordinal != int16(i) || mrg.NumRows != rg.NumRows() {
			t.Errorf("row group %d: ordinal %d rows %d", i, mrg.Ordinal, mrg.NumRows)
		}
		var compressed int64
		for j, chunk := range rg.ColumnChunks() {
			cc := &mrg.Columns[j]
			name := fmt.Sprintf("row group %d column %s", i, strings.Join(paths[j], "."))
			compressed += cc.MetaData.TotalCompressedSize
			if !slices.Equal(cc.MetaData.PathInSchema, paths[j]) || cc.MetaData.Codec != format.Snappy {
				t.Errorf("%s: path %v codec %v", name, cc.MetaData.PathInSchema, cc.MetaData.Codec)
			}
			leaf, _ := schema.Lookup(paths[j]...)
			typ := leaf.Node.Type()
			values, numValues, nulls := readChunk(t, name, chunk, leaf.MaxDefinitionLevel)
			if numValues != cc.MetaData.NumValues || nulls != cc.MetaData.Statistics.NullCount {
				t.Errorf("%s: %d values %d nulls read, metadata says %d, %d", name, numValues, nulls, cc.MetaData.NumValues, cc.MetaData.Statistics.NullCount)
			}
			st := cc.MetaData.Statistics
			wantStats := !slices.ContainsFunc(noBounds[kindDecisions], func(p []string) bool { return slices.Equal(p, paths[j]) })
			lo, hi, ok := valueBounds(typ, values)
			switch {
			case !wantStats && (st.MinValue != nil || st.MaxValue != nil || cc.ColumnIndexOffset != 0):
				t.Errorf("%s: statistics or column index on a column without bounds", name)
			case wantStats && ok && (st.MinValue == nil || st.MaxValue == nil):
				t.Errorf("%s: no min/max statistics", name)
			case wantStats && ok:
				if c := typ.Compare(typ.Kind().Value(st.MinValue), lo); c != 0 {
					t.Errorf("%s: min statistic %v, values' min %v", name, typ.Kind().Value(st.MinValue), lo)
				}
				if c := typ.Compare(typ.Kind().Value(st.MaxValue), hi); c != 0 {
					t.Errorf("%s: max statistic %v, values' max %v", name, typ.Kind().Value(st.MaxValue), hi)
				}
			}
			checkPages(t, name, data, cc, rg.NumRows(), typ, wantStats)
		}
		if compressed != mrg.TotalCompressedSize {
			t.Errorf("row group %d: total compressed size %d, columns add up to %d", i, mrg.TotalCompressedSize, compressed)
		}
	}
}

// readChunk reads every page of a column chunk with parquet-go and returns
// its non-null values, its values (level entries) and its nulls.
func readChunk(t *testing.T, name string, chunk parquet.ColumnChunk, maxDef int) (values []parquet.Value, numValues, nulls int64) {
	t.Helper()
	pages := chunk.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 1000)
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: read page: %v", name, err)
		}
		r := p.Values()
		var n int64
		for {
			k, err := r.ReadValues(buf)
			for _, v := range buf[:k] {
				if v.DefinitionLevel() < maxDef {
					nulls++
				} else {
					values = append(values, v.Clone())
				}
			}
			n += int64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: read values: %v", name, err)
			}
		}
		if n != p.NumValues() {
			t.Errorf("%s: page read %d values, says %d", name, n, p.NumValues())
		}
		numValues += n
		parquet.Release(p)
	}
	return values, numValues, nulls
}

// valueBounds returns the min and max of values by typ's order, NaNs left
// out.
func valueBounds(typ parquet.Type, values []parquet.Value) (lo, hi parquet.Value, ok bool) {
	for _, v := range values {
		if v.Kind() == parquet.Double && math.IsNaN(v.Double()) {
			continue
		}
		if !ok || typ.Compare(v, lo) < 0 {
			lo = v
		}
		if !ok || typ.Compare(v, hi) > 0 {
			hi = v
		}
		ok = true
	}
	return lo, hi, ok
}

// checkPages walks the pages of column chunk cc in data: each page header
// decodes, its CRC matches its body, the data pages are those of the
// offset index, and the column index (when written) has a page's null
// count and bounds that hold its values.
func checkPages(t *testing.T, name string, data []byte, cc *format.ColumnChunk, numRows int64, typ parquet.Type, wantStats bool) {
	t.Helper()
	m := &cc.MetaData
	var oi format.OffsetIndex
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), data[cc.OffsetIndexOffset:cc.OffsetIndexOffset+int64(cc.OffsetIndexLength)], &oi); err != nil {
		t.Fatalf("%s: offset index: %v", name, err)
	}
	var ci format.ColumnIndex
	if cc.ColumnIndexOffset != 0 {
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), data[cc.ColumnIndexOffset:cc.ColumnIndexOffset+int64(cc.ColumnIndexLength)], &ci); err != nil {
			t.Fatalf("%s: column index: %v", name, err)
		}
	}
	unbounded := false // a page of values without bounds (NaNs)
	start := m.DataPageOffset
	if m.DictionaryPageOffset != 0 {
		if m.DictionaryPageOffset >= start {
			t.Errorf("%s: dictionary page at %d after the data pages at %d", name, m.DictionaryPageOffset, start)
		}
		start = m.DictionaryPageOffset
	}
	end := start + m.TotalCompressedSize
	var page int
	var rows int64
	for off := start; off < end; {
		var h format.PageHeader
		rd := bytes.NewReader(data[off:end])
		if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(rd)).Decode(&h); err != nil {
			t.Fatalf("%s: page header at %d: %v", name, off, err)
		}
		hl := int64(end-off) - int64(rd.Len())
		body := data[off+hl : off+hl+int64(h.CompressedPageSize)]
		if got := int32(crc32.ChecksumIEEE(body)); got != h.CRC {
			t.Errorf("%s: page at %d CRC %d, body's %d", name, off, h.CRC, got)
		}
		if h.Type == format.DataPageV2 {
			if page >= len(oi.PageLocations) {
				t.Fatalf("%s: more data pages than the offset index's %d", name, len(oi.PageLocations))
			}
			loc := oi.PageLocations[page]
			if loc.Offset != off || int64(loc.CompressedPageSize) != hl+int64(h.CompressedPageSize) || loc.FirstRowIndex != rows {
				t.Errorf("%s: page %d at %d (%d bytes, first row %d), offset index says %+v", name, page, off, hl+int64(h.CompressedPageSize), rows, loc)
			}
			v2 := h.DataPageHeaderV2.V
			rows += int64(v2.NumRows)
			unbounded = unbounded || v2.NumNulls < v2.NumValues && v2.Statistics.MinValue == nil
			if ci.NullPages != nil {
				if ci.NullCounts[page] != int64(v2.NumNulls) || ci.NullPages[page] != (v2.NumNulls == v2.NumValues) {
					t.Errorf("%s: page %d has %d nulls of %d, column index says %d, null page %v", name, page, v2.NumNulls, v2.NumValues, ci.NullCounts[page], ci.NullPages[page])
				}
				st := v2.Statistics
				if !ci.NullPages[page] {
					if typ.Compare(typ.Kind().Value(ci.MinValues[page]), typ.Kind().Value(st.MinValue)) > 0 ||
						typ.Compare(typ.Kind().Value(ci.MaxValues[page]), typ.Kind().Value(st.MaxValue)) < 0 {
						t.Errorf("%s: page %d column index bounds %q..%q do not hold its statistics %q..%q", name, page, ci.MinValues[page], ci.MaxValues[page], st.MinValue, st.MaxValue)
					}
				}
			}
			page++
		} else if h.Type != format.DictionaryPage || off != m.DictionaryPageOffset {
			t.Errorf("%s: page of type %v at %d", name, h.Type, off)
		}
		off += hl + int64(h.CompressedPageSize)
	}
	if page != len(oi.PageLocations) || rows != numRows {
		t.Errorf("%s: %d data pages of %d rows, offset index has %d pages, row group %d rows", name, page, rows, len(oi.PageLocations), numRows)
	}
	if wantStats && ci.NullPages == nil && !unbounded {
		t.Errorf("%s: no column index", name)
	}
	if ci.NullPages != nil && unbounded {
		t.Errorf("%s: a column index with a page without bounds", name)
	}
}

// referenceFile returns the footer parquet-go writes for a decisions file
// with the writer's options.
func referenceFile(t *testing.T) *format.FileMetaData {
	t.Helper()
	var buf bytes.Buffer
	w := newWriter(t, Config{Dir: t.TempDir(), Node: "writer-1", StoreRatio: 0.5})
	opts := []parquet.WriterOption{parquet.Compression(&fastSnappy{}), parquet.CreatedBy("sightline", "decisionlog", schemaName(kindDecisions))}
	for _, kv := range w.metadata(kindDecisions) {
		opts = append(opts, parquet.KeyValueMetadata(kv.Key, kv.Value))
	}
	pw := parquet.NewGenericWriter[Decision](&buf, opts...)
	if _, err := pw.Write([]Decision{{RequestID: "r"}}); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return pf.Metadata()
}

// NaNs are no bounds: a page of them has none and its column chunk has
// no column index, but the chunk's statistics are those of its other
// values; infinities are bounds like any value.
func TestColumnarNaN(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 1))
	rows := make([]Decision, 64)
	for i := range rows {
		rows[i] = randDecision(r, i)
		rows[i].Explore = math.Inf(1 - 2*(i%2))
		if i >= 16 && i < 32 {
			rows[i].Confidence = math.NaN() // two whole pages of 8 rows
		}
	}
	rows[40].Confidence = math.NaN()
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions-test-1.parquet")
	writeDecisionsFile(t, path, rows, 1000, 64, 3)
	diffRows(t, "parquet-go", rows, readDecisions(t, dir), cmpopts.EquateEmpty(), cmpopts.EquateNaNs())
	checkFile(t, path, rows)

	pf := openForTest(t, path)
	md := pf.Metadata()
	conf, explore := md.RowGroups[0].Columns[cConfidence], md.RowGroups[0].Columns[cExplore]
	if conf.ColumnIndexOffset != 0 || conf.MetaData.Statistics.MinValue == nil {
		t.Errorf("confidence: column index at %d, min %v; want none and a min", conf.ColumnIndexOffset, conf.MetaData.Statistics.MinValue)
	}
	lo, hi := explore.MetaData.Statistics.MinValue, explore.MetaData.Statistics.MaxValue
	if explore.ColumnIndexOffset == 0 || len(lo) != 8 || len(hi) != 8 ||
		!math.IsInf(math.Float64frombits(binary.LittleEndian.Uint64(lo)), -1) || !math.IsInf(math.Float64frombits(binary.LittleEndian.Uint64(hi)), 1) {
		t.Errorf("explore: column index at %d, bounds %v..%v; want one and -Inf..+Inf", explore.ColumnIndexOffset, lo, hi)
	}
}

// A file without rows (which the writer never closes, but could) is a
// valid Parquet file of no row groups.
func TestColumnarEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions-test-1.parquet")
	writeDecisionsFile(t, path, nil, 100, 0, 1)
	pf := openForTest(t, path)
	if pf.NumRows() != 0 || len(pf.RowGroups()) != 0 {
		t.Errorf("empty file has %d rows in %d row groups", pf.NumRows(), len(pf.RowGroups()))
	}
	checkFile(t, path, nil)
}
