package decisionlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

// The columns of a decisions file, in the order of the schema of Decision
// (checked by decisionsTemplate against parquet.SchemaOf(Decision{})).
const (
	cRequestID = iota
	cTime
	cUserHash
	cKnownUser
	cNode
	cChannel
	cVariant
	cModelVersion
	cAgeBucket
	cSegment
	cRegion
	cDevice
	cContextHour
	cRecent
	cCandidates
	cEligible
	cExplore
	cExploreTop
	cConfidence
	cFallback
	cItemID
	cItemCategory
	cItemScore
	cItemReason
	cItemPropensity
	cPoolItemID
	cPoolCategory
	cPoolScore
	cPoolPopularity
	cDuration
	cTraceID
	cTraceSampled
	cShadowVersion
	cShadowItemID
	cShadowScore
	cShadowError
	cShadowDuration
	numDecisionColumns
)

// The lists of a decisions file (columnSpec.list).
const (
	listRecent = 1 + iota
	listItems
	listPool
	listShadow
)

// decisionSpecs are the columns of a decisions file; their statistics are
// those noBounds does not leave out.
var decisionSpecs = [numDecisionColumns]columnSpec{
	cRequestID:      {path: []string{"request_id"}, typ: colBytes},
	cTime:           {path: []string{"time"}, typ: colInt64},
	cUserHash:       {path: []string{"user_hash"}, typ: colBytes},
	cKnownUser:      {path: []string{"known_user"}, typ: colBool},
	cNode:           {path: []string{"node"}, typ: colDict},
	cChannel:        {path: []string{"channel"}, typ: colDict},
	cVariant:        {path: []string{"variant"}, typ: colDict},
	cModelVersion:   {path: []string{"model_version"}, typ: colDict},
	cAgeBucket:      {path: []string{"user_age_bucket"}, typ: colDict, optional: true},
	cSegment:        {path: []string{"user_segment"}, typ: colDict, optional: true},
	cRegion:         {path: []string{"user_region"}, typ: colDict, optional: true},
	cDevice:         {path: []string{"user_device"}, typ: colDict, optional: true},
	cContextHour:    {path: []string{"context_hour"}, typ: colInt32},
	cRecent:         {path: []string{"recent_categories", "list", "element"}, typ: colBytes, list: listRecent},
	cCandidates:     {path: []string{"candidates"}, typ: colInt32},
	cEligible:       {path: []string{"eligible"}, typ: colInt32},
	cExplore:        {path: []string{"explore"}, typ: colDouble},
	cExploreTop:     {path: []string{"explore_top"}, typ: colInt32},
	cConfidence:     {path: []string{"confidence"}, typ: colDouble},
	cFallback:       {path: []string{"fallback_reason"}, typ: colDict},
	cItemID:         {path: []string{"items", "list", "element", "item_id"}, typ: colBytes, list: listItems},
	cItemCategory:   {path: []string{"items", "list", "element", "category"}, typ: colBytes, list: listItems},
	cItemScore:      {path: []string{"items", "list", "element", "score"}, typ: colDouble, list: listItems},
	cItemReason:     {path: []string{"items", "list", "element", "reason"}, typ: colBytes, list: listItems},
	cItemPropensity: {path: []string{"items", "list", "element", "propensity"}, typ: colDouble, list: listItems},
	cPoolItemID:     {path: []string{"pool", "list", "element", "item_id"}, typ: colBytes, list: listPool},
	cPoolCategory:   {path: []string{"pool", "list", "element", "category"}, typ: colBytes, list: listPool},
	cPoolScore:      {path: []string{"pool", "list", "element", "score"}, typ: colDouble, list: listPool},
	cPoolPopularity: {path: []string{"pool", "list", "element", "popularity"}, typ: colDouble, list: listPool},
	cDuration:       {path: []string{"duration_ns"}, typ: colInt64},
	cTraceID:        {path: []string{"trace_id"}, typ: colBytes},
	cTraceSampled:   {path: []string{"trace_sampled"}, typ: colBool},
	cShadowVersion:  {path: []string{"shadow_model_version"}, typ: colDict},
	cShadowItemID:   {path: []string{"shadow_items", "list", "element", "item_id"}, typ: colBytes, list: listShadow},
	cShadowScore:    {path: []string{"shadow_items", "list", "element", "score"}, typ: colDouble, list: listShadow},
	cShadowError:    {path: []string{"shadow_error"}, typ: colDict},
	cShadowDuration: {path: []string{"shadow_duration_ns"}, typ: colInt64},
}

// decisionsTemplate is the template of the decisions files, built once.
var decisionsTemplate = sync.OnceValues(func() (*fileTemplate, error) {
	return newTemplate(parquet.SchemaOf(Decision{}), kindDecisions, decisionSpecs[:], 4)
})

// newTemplate returns the template of kind's files of schema, whose leaf
// columns specs describe in order: it fails when they do not match the
// schema's (path, type, levels, dictionary encoding). The schema elements
// and column orders are those parquet-go writes for schema.
func newTemplate(schema *parquet.Schema, kind string, specs []columnSpec, numLists int) (*fileTemplate, error) {
	cfg, err := parquet.NewWriterConfig(parquet.CreatedBy("sightline", "decisionlog", schemaName(kind)))
	if err != nil {
		return nil, fmt.Errorf("decisionlog: writer config: %w", err)
	}
	t := &fileTemplate{specs: slices.Clone(specs), numLists: numLists, createdBy: cfg.CreatedBy}
	skip := map[string]bool{}
	for _, p := range noBounds[kind] {
		skip[strings.Join(p, ".")] = true
	}
	paths := schema.Columns()
	if len(paths) != len(specs) {
		return nil, fmt.Errorf("decisionlog: %s schema has %d columns, the encoder %d", kind, len(paths), len(specs))
	}
	for i, p := range paths {
		s := &t.specs[i]
		leaf, _ := schema.Lookup(p...)
		wantDef, wantRep := 0, 0
		if s.optional {
			wantDef = 1
		}
		if s.list != 0 {
			wantDef, wantRep = 1, 1
		}
		dict := leaf.Node.Encoding() != nil && leaf.Node.Encoding().Encoding() == format.RLEDictionary
		pt := leaf.Node.Type().PhysicalType()
		if !slices.Equal(p, s.path) || pt == nil || *pt != s.typ.physical() ||
			leaf.MaxDefinitionLevel != wantDef || leaf.MaxRepetitionLevel != wantRep || dict != (s.typ == colDict) ||
			(s.list != 0 && (s.list > numLists || s.optional)) {
			return nil, fmt.Errorf("decisionlog: %s column %d: schema has %v (%v, def %d, rep %d, dict %v), the encoder %v",
				kind, i, p, pt, leaf.MaxDefinitionLevel, leaf.MaxRepetitionLevel, dict, s.path)
		}
		s.stats = !skip[strings.Join(p, ".")]
		t.columnOrders = append(t.columnOrders, *leaf.Node.Type().ColumnOrder())
	}
	t.schema = schemaElements(schema)
	return t, nil
}

// schemaElements returns the schema elements of schema as parquet-go's
// writer makes them: the nodes depth first, the root named after the
// schema.
func schemaElements(schema *parquet.Schema) []format.SchemaElement {
	var out []format.SchemaElement
	var walk func(name string, n parquet.Node, root bool)
	walk = func(name string, n parquet.Node, root bool) {
		e := format.SchemaElement{Name: name, FieldID: int32(n.ID())}
		if !root {
			switch {
			case n.Required():
				e.RepetitionType.Set(format.Required)
			case n.Optional():
				e.RepetitionType.Set(format.Optional)
			case n.Repeated():
				e.RepetitionType.Set(format.Repeated)
			}
		}
		typ := n.Type()
		if lt := typ.LogicalType(); lt != nil {
			e.LogicalType = *lt
			if d, ok := lt.Value.(*format.DecimalType); ok {
				e.Scale.Set(d.Scale)
				e.Precision.Set(d.Precision)
			}
		}
		if l := int32(typ.Length()); l > 0 {
			e.TypeLength.Set(l)
		}
		if !n.Leaf() {
			e.NumChildren.Set(int32(len(n.Fields())))
		}
		if pt := typ.PhysicalType(); pt != nil {
			e.Type.Set(*pt)
		}
		if ct := typ.ConvertedType(); ct != nil {
			e.ConvertedType.Set(*ct)
		}
		out = append(out, e)
		for _, f := range n.Fields() {
			walk(f.Name(), f, false)
		}
	}
	walk(schema.Name(), schema, true)
	return out
}

// decisionsFile encodes the rows of one decisions file.
type decisionsFile struct {
	f *columnarFile
	c [numDecisionColumns]*column
	// The lists' levels.
	recent, items, pool, shadow *levels
	// kv is the file's key-value metadata.
	kv []format.KeyValue
}

var _ fileEncoder = (*decisionsFile)(nil)

// reset readies e, closed or abandoned, to write another file to out,
// keeping its buffers (a file's grow to some megabytes).
func (e *decisionsFile) reset(out io.Writer) { e.f.reset(out) }

// full reports false: add encodes each row as it comes.
func (e *decisionsFile) full() bool { return false }

// flush does nothing: add encodes each row as it comes, and row groups are
// written as they fill.
func (e *decisionsFile) flush() error { return nil }

// close writes the last row group and the footer.
func (e *decisionsFile) close() error { return e.f.close(e.kv) }

// newDecisionsFile returns the encoder of a decisions file written to out.
func newDecisionsFile(out io.Writer, tmpl *fileTemplate, rowGroup, pageSize int) *decisionsFile {
	e := &decisionsFile{f: newColumnarFile(out, tmpl, rowGroup, pageSize)}
	copy(e.c[:], e.f.cols)
	e.recent = e.f.lists[listRecent-1]
	e.items = e.f.lists[listItems-1]
	e.pool = e.f.lists[listPool-1]
	e.shadow = e.f.lists[listShadow-1]
	return e
}

// add appends the decoded decision record d, x, feats (see
// [engine.RecordDecoder.DecodeFlat]) served by node as a row. The row
// keeps copies of every value: the record may be reused once add returns.
func (e *decisionsFile) add(d *engine.Decision, x *model.Context, feats []engine.RecordFeature, node string) error {
	c := &e.c
	c[cRequestID].appendString(d.RequestID)
	c[cTime].appendInt64(d.Time.UnixMicro())
	c[cUserHash].appendString(d.UserHash)
	c[cKnownUser].appendBool(d.KnownUser)
	c[cNode].appendDict(node)
	c[cChannel].appendDict(d.Channel)
	c[cVariant].appendDict(d.Variant)
	c[cModelVersion].appendDict(d.ModelVersion)
	var age, segment, region, device *engine.RecordFeature
	for i := range feats {
		switch f := &feats[i]; f.Name {
		case event.AttrAgeBucket:
			age = f
		case event.AttrSegment:
			segment = f
		case event.AttrRegion:
			region = f
		case event.AttrDevice:
			device = f
		}
	}
	appendFeature(c[cAgeBucket], age)
	appendFeature(c[cSegment], segment)
	appendFeature(c[cRegion], region)
	appendFeature(c[cDevice], device)
	c[cContextHour].appendInt32(int32(x.Hour))
	e.recent.add(len(x.RecentCategories))
	for _, s := range x.RecentCategories {
		c[cRecent].appendString(s)
	}
	c[cCandidates].appendInt32(int32(d.Candidates))
	c[cEligible].appendInt32(int32(d.Eligible))
	c[cExplore].appendDouble(d.Explore)
	c[cExploreTop].appendInt32(int32(d.ExploreTop))
	c[cConfidence].appendDouble(d.Confidence)
	c[cFallback].appendDict(string(d.Fallback))
	// The lists column by column.
	e.items.add(len(d.Items))
	appendStrings(c[cItemID], d.Items, func(it *engine.Item) string { return it.ItemID })
	appendStrings(c[cItemCategory], d.Items, func(it *engine.Item) string { return it.Category })
	appendDoubles(c[cItemScore], d.Items, func(it *engine.Item) float64 { return it.Score })
	appendStrings(c[cItemReason], d.Items, func(it *engine.Item) string { return it.Reason })
	appendDoubles(c[cItemPropensity], d.Items, func(it *engine.Item) float64 { return it.Propensity })
	e.pool.add(len(d.Pool))
	appendStrings(c[cPoolItemID], d.Pool, func(p *engine.PoolItem) string { return p.ItemID })
	appendStrings(c[cPoolCategory], d.Pool, func(p *engine.PoolItem) string { return p.Category })
	appendDoubles(c[cPoolScore], d.Pool, func(p *engine.PoolItem) float64 { return p.Score })
	appendDoubles(c[cPoolPopularity], d.Pool, func(p *engine.PoolItem) float64 { return p.Popularity })
	c[cDuration].appendInt64(int64(d.Duration))
	c[cTraceID].appendString(d.TraceID)
	c[cTraceSampled].appendBool(d.TraceSampled)
	e.appendShadow(d.Shadow)
	return e.f.endRow()
}

// appendShadow appends the shadow challenger's would-be answer sh (nil
// when none scored the decision).
func (e *decisionsFile) appendShadow(sh *engine.Shadow) {
	c := &e.c
	if sh == nil {
		c[cShadowVersion].appendDict("")
		e.shadow.add(0)
		c[cShadowError].appendDict("")
		c[cShadowDuration].appendInt64(0)
		return
	}
	c[cShadowVersion].appendDict(sh.ModelVersion)
	n := min(len(sh.Items), len(sh.Scores))
	e.shadow.add(n)
	appendStrings(c[cShadowItemID], sh.Items[:n], func(s *string) string { return *s })
	appendDoubles(c[cShadowScore], sh.Scores[:n], func(v *float64) float64 { return *v })
	c[cShadowError].appendDict(sh.Error)
	c[cShadowDuration].appendInt64(int64(sh.Duration))
}

// appendStrings appends field of each of xs to the byte array column c,
// keeping c's buffers in locals through the loop.
func appendStrings[T any](c *column, xs []T, field func(*T) string) {
	l, v := c.lens, c.vals
	for i := range xs {
		s := field(&xs[i])
		l, v = append(l, int32(len(s))), append(v, s...)
	}
	c.lens, c.vals = l, v
}

// appendDoubles appends field of each of xs to the double column c.
func appendDoubles[T any](c *column, xs []T, field func(*T) float64) {
	v := c.vals
	for i := range xs {
		v = binary.LittleEndian.AppendUint64(v, math.Float64bits(field(&xs[i])))
	}
	c.vals = v
}

// appendFeature appends a user attribute: null when the record has no such
// feature or a null one.
func appendFeature(c *column, f *engine.RecordFeature) {
	if f == nil || f.Null {
		c.appendOptionalDict("", false)
		return
	}
	c.appendOptionalDict(f.Value, true)
}
