// Package api is Sightline's HTTP delivery layer: routes, strict decoding and
// validation of requests, RFC 9457 application/problem+json errors, request
// ids, panic recovery and the embedded OpenAPI 3.1 document.
//
// It owns the wire format of the REST API and nothing else. Recommendations,
// event publishing, the catalog, imports, statistics and readiness are reached
// through small interfaces declared here ([Recommender], [EventPublisher],
// [Catalog], [Importer], [StatsSource]) that the application wires to the
// engine, the event bus and the feature store. Telemetry is added by the
// application through [Config].Middleware, which wraps every API route after
// the router has set [http.Request].Pattern, so spans and metrics can be named
// by route.
//
// Access control and admission control sit in front of every route: each
// route has a [Scope] that an API key ([Key], [ParseKeys]) must hold when
// keys are configured ([AccessConfig]), and the recommendation and event
// routes pass a [Limiter] that answers 429 with Retry-After past its
// concurrency limit ([AdmissionConfig]). Failures of either are
// application/problem+json like every other error.
//
// A [Server] is an [http.Handler] and is safe for concurrent use.
package api
