package telemetry

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// HandlerOptions configures [NewHandler].
type HandlerOptions struct {
	// Level is the minimum level written; nil means INFO.
	Level slog.Leveler
	// ContextAttrs, if set, returns attributes to add at the top level of
	// every record from its context (the app adds request_id). It must be
	// fast and safe for concurrent use.
	ContextAttrs func(ctx context.Context) []slog.Attr
	// Redactor redacts every attribute and the message. Required.
	Redactor *Redactor
	// Tee, if set, receives every written line (the JSON bytes, newline
	// terminated). It must not block and must not retain p.
	Tee func(p []byte)
	// Extra, if set, also receives every redacted record (the OTLP log
	// bridge). Its errors are ignored: it is best effort.
	Extra slog.Handler
}

// handler is the slog JSON handler of the package: it redacts, adds the
// trace context at the top level, writes JSON and tees the line.
type handler struct {
	json   slog.Handler // JSON handler with the ungrouped attrs preformatted
	extra  slog.Handler
	opts   *HandlerOptions
	groups []frame // open groups, outermost first
}

// frame is an open group and the attrs added inside it so far.
type frame struct {
	name  string
	attrs []slog.Attr
}

var _ slog.Handler = (*handler)(nil)

// NewHandler returns a [slog.Handler] that writes JSON lines to w (as
// [slog.JSONHandler] does), with every attribute and the message redacted
// by opts.Redactor and top-level trace_id, span_id and trace_flags (hex)
// from the span context in the record's context, plus opts.ContextAttrs.
// It is safe for concurrent use.
func NewHandler(w io.Writer, opts HandlerOptions) slog.Handler {
	o := opts
	if o.Tee != nil {
		w = teeWriter{w: w, tee: o.Tee}
	}
	return &handler{
		json:  slog.NewJSONHandler(w, &slog.HandlerOptions{Level: o.Level}),
		extra: o.Extra,
		opts:  &o,
	}
}

// teeWriter passes each write to w and to tee. slog.JSONHandler writes one
// whole line per Write.
type teeWriter struct {
	w   io.Writer
	tee func([]byte)
}

func (t teeWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.tee(p)
	return n, err
}

// Enabled reports whether level is enabled.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.json.Enabled(ctx, level)
}

// WithAttrs returns a handler with attrs (redacted) added to every record.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.opts.Redactor.RedactAttr(a)
	}
	h2 := *h
	if len(h.groups) == 0 {
		h2.json = h.json.WithAttrs(red)
		if h.extra != nil {
			h2.extra = h.extra.WithAttrs(red)
		}
		return &h2
	}
	h2.groups = slices.Clone(h.groups)
	last := &h2.groups[len(h2.groups)-1]
	last.attrs = append(slices.Clip(last.attrs), red...)
	return &h2
}

// WithGroup returns a handler that nests later attributes in group name;
// trace_id, span_id, trace_flags and the context attributes stay at the
// top level.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), frame{name: name})
	return &h2
}

var bufPool = sync.Pool{New: func() any { s := make([]slog.Attr, 0, 16); return &s }}

// Handle redacts r and writes it.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	red := h.opts.Redactor
	bp := bufPool.Get().(*[]slog.Attr)
	attrs := (*bp)[:0]
	defer func() {
		clear(attrs)
		*bp = attrs[:0]
		bufPool.Put(bp)
	}()

	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs,
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
			slog.String("trace_flags", sc.TraceFlags().String()),
		)
	}
	if h.opts.ContextAttrs != nil {
		for _, a := range h.opts.ContextAttrs(ctx) {
			attrs = append(attrs, red.RedactAttr(a))
		}
	}
	top := len(attrs)
	r.Attrs(func(a slog.Attr) bool {
		// A record attribute the context already supplied at the top level
		// (request_id from both the API and the engine) is written once.
		if len(h.groups) == 0 && slices.ContainsFunc(attrs[:top], func(b slog.Attr) bool { return b.Key == a.Key }) {
			return true
		}
		attrs = append(attrs, red.RedactAttr(a))
		return true
	})
	if len(h.groups) > 0 {
		inner := slices.Clone(attrs[top:])
		for i := len(h.groups) - 1; i >= 0; i-- {
			g := h.groups[i]
			members := append(slices.Clone(g.attrs), inner...)
			inner = []slog.Attr{{Key: g.name, Value: slog.GroupValue(members...)}}
		}
		attrs = append(attrs[:top], inner...)
	}
	out := slog.NewRecord(r.Time, r.Level, red.RedactString(r.Message), r.PC)
	out.AddAttrs(attrs...)
	err := h.json.Handle(ctx, out)
	if h.extra != nil && h.extra.Enabled(ctx, r.Level) {
		_ = h.extra.Handle(ctx, out) // best effort
	}
	return err
}
