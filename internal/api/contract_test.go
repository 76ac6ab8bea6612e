package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sightline/sightline/internal/api/apitest"
)

// checked wraps h, an API server, so that every response it writes in a
// test, success or problem, is validated against openapi.json; a mismatch
// fails t. Benchmarks get h itself: they measure the server, not the
// validator.
func checked(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	if _, ok := t.(*testing.B); ok {
		return h
	}
	v, err := apitest.Default()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return v.Handler(t, h)
}

// statsFixture is the /v1/stats body the fake StatsSource answers: the
// Stats example of openapi.json, shaped like a node's (app.Stats), so that
// the contract check holds the fake to the document too.
func statsFixture() any {
	v, err := apitest.Default()
	if err != nil {
		panic(err)
	}
	b, err := v.Example("Stats")
	if err != nil {
		panic(err)
	}
	return json.RawMessage(b)
}
