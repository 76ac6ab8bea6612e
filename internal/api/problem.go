package api

import (
	"net/http"
	"strconv"
)

// problemBase is the prefix of every problem type URI.
const problemBase = "https://sightline.dev/problems/"

// The problem types the API answers with. The slug is appended to
// problemBase; the set is closed and documented in openapi.json.
const (
	slugInvalidRequest   = "invalid-request"
	slugNotFound         = "not-found"
	slugMethodNotAllowed = "method-not-allowed"
	slugTooLarge         = "payload-too-large"
	slugUnavailable      = "unavailable"
	slugNotImplemented   = "not-implemented"
	slugInternal         = "internal"
	slugUnauthorized     = "unauthorized"
	slugForbidden        = "forbidden"
	slugOverloaded       = "overloaded"
)

var problemTitles = map[string]string{
	slugInvalidRequest:   "Invalid request",
	slugNotFound:         "Not found",
	slugMethodNotAllowed: "Method not allowed",
	slugTooLarge:         "Payload too large",
	slugUnavailable:      "Service unavailable",
	slugNotImplemented:   "Not implemented",
	slugInternal:         "Internal server error",
	slugUnauthorized:     "Unauthorized",
	slugForbidden:        "Forbidden",
	slugOverloaded:       "Too many requests",
}

// FieldError is one entry of a problem's "errors" extension: a field and
// what is wrong with it.
type FieldError struct {
	// Field is the JSON name (dotted path) of the offending field or query
	// parameter.
	Field string `json:"field"`
	// Detail says what is wrong and what to send instead.
	Detail string `json:"detail"`
}

// Problem is an RFC 9457 problem details object, the body of every error
// answer of the API (Content-Type application/problem+json).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail says what went wrong with this request and what to fix.
	Detail string `json:"detail"`
	// Instance is the path of the request that failed.
	Instance string `json:"instance,omitempty"`
	// RequestID is the id of the request (also in the X-Request-ID header).
	RequestID string `json:"request_id,omitempty"`
	// Errors lists every invalid field when there is more than one.
	Errors []FieldError `json:"errors,omitempty"`
}

// problem is an error answer in the making: handlers and decoders return it
// and the server writes it.
type problem struct {
	status int
	slug   string
	detail string
	errors []FieldError
}

func (p *problem) Error() string { return p.detail }

func badRequest(detail string) *problem {
	return &problem{status: http.StatusBadRequest, slug: slugInvalidRequest, detail: detail}
}

func tooLarge(limit int64) *problem {
	return &problem{status: http.StatusRequestEntityTooLarge, slug: slugTooLarge,
		detail: "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
}

func unavailable(detail string) *problem {
	return &problem{status: http.StatusServiceUnavailable, slug: slugUnavailable, detail: detail}
}

func notFound(detail string) *problem {
	return &problem{status: http.StatusNotFound, slug: slugNotFound, detail: detail}
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	body := Problem{
		Type:      problemBase + p.slug,
		Title:     problemTitles[p.slug],
		Status:    p.status,
		Detail:    p.detail,
		Instance:  r.URL.EscapedPath(),
		RequestID: RequestIDFromContext(r.Context()),
		Errors:    p.errors,
	}
	if body.Title == "" {
		body.Title = http.StatusText(p.status)
	}
	h := w.Header()
	if (p.status == http.StatusServiceUnavailable || p.status == http.StatusTooManyRequests) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", "1")
	}
	writeJSON(w, p.status, "application/problem+json", &body)
}

// WriteProblem writes an application/problem+json answer for the routes a
// node mounts beside the API (operational and admin routes), so every error
// answer of the process has one shape. slug names the problem type under
// https://sightline.dev/problems/; detail says what to fix.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	writeProblem(w, r, &problem{status: status, slug: slug, detail: detail})
}
