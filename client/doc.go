// Package client is the public Go client for the Sightline REST API.
//
// It owns its wire types (they mirror the JSON of the API, not Sightline's
// internal types) so that programs using it never depend on the server's
// internals. A [Client] is created with [New] and configured with functional
// options ([WithHTTPClient], [WithUserAgent], [WithTracerProvider],
// [WithAPIKey], [WithRetry]). Every non-2xx response is returned as an
// [*Error] decoded from the server's application/problem+json body.
//
// A node past its capacity refuses requests with 429 and Retry-After, and
// answers 503 when a dependency fails; the Client retries both, waiting what
// Retry-After says or a jittered backoff, at most 3 attempts and never past
// the context's deadline ([RetryPolicy]).
//
// A Client is safe for concurrent use by multiple goroutines; share one per
// server rather than creating one per request, so connections are reused.
package client
