package telemetry

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Server wraps h, the handler of a routed API request, in a live server
// span named "{METHOD} {route}" (r.Pattern), with W3C trace context and
// baggage extracted from the request; tail retention then keeps or drops
// the trace as it does any other. It records the HTTP semantic-convention
// attributes below and nothing taken raw from the request that can hold
// personal data: url.path is the route's path with its parameters
// replaced (see [Telemetry.RoutePath]), not the request's path; there is no
// query string and no client address; the user agent and host are
// scrubbed of emails, phone numbers and IP addresses.
func (t *Telemetry) Server(h http.Handler) http.Handler {
	tracer := t.tp.Tracer("github.com/sightline/sightline/internal/telemetry")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parent := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		name := r.Pattern
		if name == "" {
			name = r.Method
		}
		ctx, span := tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindServer))
		sw := StatusOf(w)
		panicked := true
		defer func() {
			status := sw.Status()
			if panicked {
				status = http.StatusInternalServerError // what the recovering layer answers
			}
			span.SetAttributes(t.serverAttrs(r, status)...)
			setServerStatus(span, status)
			span.End()
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
		panicked = false
	})
}

// RoutePath returns the path of r as telemetry may record it: the path of
// the route r matched (r.Pattern) with each path parameter replaced, by its
// pseudonym when the parameter is a user id (so one user's requests can
// still be followed, as user_hash follows them in logs), else by its name
// in braces: "/v1/users/u_3f9a…/recommendations", "/v1/items/{item_id}".
// A parameter's raw value never appears. It returns "" for a request
// that matched no route.
func (t *Telemetry) RoutePath(r *http.Request) string {
	p := r.Pattern
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return ""
	}
	p = p[i:]
	if strings.IndexByte(p, '{') < 0 {
		return p
	}
	var b strings.Builder
	for {
		j := strings.IndexByte(p, '{')
		k := strings.IndexByte(p, '}')
		if j < 0 || k < j {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:j])
		name := strings.TrimSuffix(p[j+1:k], "...")
		p = p[k+1:]
		switch {
		case name == "$": // the end anchor of "/{$}"
		case classify(name) == keyUser && r.PathValue(name) != "":
			b.WriteString(t.redactor.Pseudonymize(r.PathValue(name)))
		default:
			b.WriteString("{" + name + "}")
		}
	}
}

// serverAttrs are the HTTP semantic-convention attributes of a server span
// (see [Telemetry.Server] for what is left out).
func (t *Telemetry) serverAttrs(r *http.Request, status int) []attribute.KeyValue {
	route := r.Pattern
	if i := strings.IndexByte(route, '/'); i >= 0 {
		route = route[i:]
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("http.route", route),
		attribute.String("url.path", t.RoutePath(r)),
		attribute.String("url.scheme", scheme),
		attribute.String("network.protocol.version", strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)),
		attribute.Int("http.response.status_code", status),
	}
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		attrs = append(attrs, attribute.String("server.address", t.redactor.RedactString(host)))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attribute.Int("server.port", p))
		}
	} else if r.Host != "" {
		attrs = append(attrs, attribute.String("server.address", t.redactor.RedactString(r.Host)))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, attribute.String("user_agent.original", t.redactor.RedactString(ua)))
	}
	return attrs
}
