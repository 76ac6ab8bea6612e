package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/decisionlog"
)

// Personal data the PII test plants: a user id that is a phone number, one
// that is an email address, and a raw user id, each also sent in headers,
// query strings, bodies and free-form profile attributes.
const (
	piiPhone       = "+15550107788"
	piiPhoneSpaced = "+1 555 010 7788"
	piiEmail       = "pii.alice@example.com"
	piiRawUser     = "pii-raw-user-7731"
)

// piiNeedles are what must not appear on any surface, in any encoding the
// surfaces use: the digits survive URL escaping (%2B), HTML escaping
// (&#43;) and JSON; the email's local part survives %40.
var piiNeedles = []string{"5550107788", "555 010 7788", "555-010-7788", "pii.alice", "pii-raw-user-7731"}

// TestNoRawPersonalDataOnAnySurface plants an email, a phone number and a
// raw user id in paths, query strings, headers, bodies and free-form
// attributes of every kind of request a client makes, then reads every
// surface the node exposes (JSON log output, /v1/logs, /v1/traces and each
// kept trace, the decisions route, /metrics, /v1/stats, /v1/experiments,
// /v1/alerts, the console's pages and JSON, and the Parquet decision log
// under the data dir) and fails on any planted value found there. It also
// checks that the surfaces did record these requests, pseudonymized, so
// that it cannot pass by looking at empty pages.
func TestNoRawPersonalDataOnAnySurface(t *testing.T) {
	dir := t.TempDir()
	logs := new(syncBuffer)
	n := startNode(t, Config{DataDir: dir, LogWriter: logs, TraceSampleRatio: 1, DecisionLogRatio: 1, Split: "ftrl=100"})
	w := smallWorld()
	if err := w.Load(t.Context(), n.c); err != nil {
		t.Fatal(err)
	}
	n.Engine().Index().Refresh()

	do := func(method, path, body string, wantStatus int) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, n.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var tid [16]byte
		var sid [8]byte
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(sid[:])
		h := req.Header
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", "pii-test/1.0 ("+piiEmail+"; "+piiPhoneSpaced+")")
		h.Set("X-Request-ID", piiEmail) // not a valid request id: replaced
		h.Set("X-User-Id", piiRawUser)
		h.Set("X-Forwarded-For", "203.0.113.7")
		h.Set("Cookie", "session="+piiRawUser)
		h.Set("Referer", "https://shop.example/profile/"+url.PathEscape(piiPhone))
		h.Set("Traceparent", "00-"+hex.EncodeToString(tid[:])+"-"+hex.EncodeToString(sid[:])+"-01")
		h.Set("Tracestate", "pii="+piiRawUser)
		h.Set("Baggage", "user_id="+piiRawUser+",email="+url.QueryEscape(piiEmail))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
		}
		return b
	}
	attrs := fmt.Sprintf(`"attributes":{"email":%q,"phone":%q,"note":%q}`, piiEmail, piiPhoneSpaced,
		"reach me at "+piiEmail+" or "+piiPhoneSpaced+", user "+piiRawUser)
	// The phone user has no age bucket: a missing_features fallback, logged
	// at WARN and kept by tail retention.
	do("PUT", "/v1/users/"+url.PathEscape(piiPhone), `{"segment":"new","region":"eu","device":"ios",`+attrs+`}`, 204)
	do("PUT", "/v1/users/"+url.PathEscape(piiEmail), `{"age_bucket":"25-34","segment":"casual","region":"eu","device":"web",`+attrs+`}`, 204)
	do("PUT", "/v1/users/"+piiRawUser, `{"user_id":"`+piiRawUser+`","age_bucket":"35-44","segment":"regular","region":"us","device":"android",`+attrs+`}`, 204)

	type served struct{ user, requestID string }
	var recs []served
	recommend := func(user, method, path, body string) {
		var r struct {
			RequestID string `json:"request_id"`
			Items     []struct {
				ItemID string `json:"item_id"`
			} `json:"items"`
		}
		if err := json.Unmarshal(do(method, path, body, 200), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Items) == 0 {
			t.Fatalf("%s %s: no items", method, path)
		}
		recs = append(recs, served{user, r.RequestID})
		// Events for the first item, with the user id in the body.
		ev := fmt.Sprintf(`[{"event_id":"pii-ev-%d-i","type":"impression","user_id":%q,"item_id":%q,"request_id":%q,"channel":"web"},`+
			`{"event_id":"pii-ev-%d-c","type":"click","user_id":%q,"item_id":%q,"request_id":%q,"channel":"web","dwell_ms":1200}]`,
			len(recs), user, r.Items[0].ItemID, r.RequestID, len(recs), user, r.Items[0].ItemID, r.RequestID)
		do("POST", "/v1/events", ev, 202)
	}
	q := url.Values{"count": {"3"}, "session_id": {piiEmail}, "page": {"/profile/" + piiPhone}}
	recommend(piiPhone, "GET", "/v1/users/"+url.PathEscape(piiPhone)+"/recommendations?"+q.Encode(), "")
	q.Set("session_id", piiRawUser)
	recommend(piiRawUser, "GET", "/v1/users/"+piiRawUser+"/recommendations?"+q.Encode(), "")
	for _, u := range []string{piiEmail, piiRawUser, piiPhone} {
		recommend(u, "POST", "/v1/recommendations",
			fmt.Sprintf(`{"user_id":%q,"count":3,"context":{"channel":"web","session_id":%q,"page":%q}}`, u, piiRawUser, "/u/"+piiPhone+"/"+piiEmail))
	}
	// Bad requests carrying the values are answered, not recorded raw.
	do("POST", "/v1/events", `[{"event_id":"e","type":"click","user_id":"`+piiEmail+"\xff"+`","item_id":"i"}]`, 400)
	do("PUT", "/v1/users/"+url.PathEscape(piiEmail), `{"segment":`, 400)
	do("GET", "/v1/people/"+url.PathEscape(piiEmail), "", 404)
	waitApplied(t, n.base)

	get := func(path string) []byte { return getBody(t, n.base+path) }
	surfaces := map[string][]byte{}
	for _, p := range []string{"/v1/logs?limit=1000", "/v1/traces?limit=1000", "/metrics", "/v1/stats", "/v1/experiments", "/v1/alerts",
		"/", "/traces", "/traces?kind=all", "/logs", "/decisions", "/model", "/experiments", "/evaluate", "/alerts", "/drills", "/console/api/series"} {
		surfaces["GET "+p] = get(p)
	}
	var list struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(surfaces["GET /v1/traces?limit=1000"], &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Traces) == 0 {
		t.Fatal("no traces kept; every request was sampled")
	}
	for _, tr := range list.Traces {
		surfaces["GET /v1/traces/"+tr.TraceID] = get("/v1/traces/" + tr.TraceID)
		surfaces["GET /traces/"+tr.TraceID] = get("/traces/" + tr.TraceID)
	}
	for _, r := range recs {
		surfaces["GET /v1/decisions/"+r.requestID] = get("/v1/decisions/" + r.requestID)
		surfaces["GET /decisions/"+r.requestID] = get("/decisions/" + r.requestID)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	surfaces["JSON log output"] = []byte(logs.String())
	var parquet bytes.Buffer
	logDir := filepath.Join(dir, "decisions")
	err := decisionlog.ReadDecisions(context.Background(), logDir, func(d *decisionlog.Decision) error {
		return json.NewEncoder(&parquet).Encode(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = decisionlog.ReadEvents(context.Background(), logDir, func(e *decisionlog.Event) error {
		return json.NewEncoder(&parquet).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	surfaces["Parquet decision log"] = parquet.Bytes()

	for name, b := range surfaces {
		low := bytes.ToLower(b)
		for _, needle := range piiNeedles {
			if i := bytes.Index(low, []byte(needle)); i >= 0 {
				t.Errorf("%s shows %q: ...%s...", name, needle, b[max(0, i-120):min(len(b), i+80)])
			}
		}
	}

	// The surfaces did record these requests, under pseudonyms.
	for _, u := range []string{piiPhone, piiEmail, piiRawUser} {
		hash := n.tel.Pseudonymize(u)
		for _, name := range []string{"JSON log output", "Parquet decision log", "GET /v1/logs?limit=1000"} {
			if !bytes.Contains(surfaces[name], []byte(hash)) {
				t.Errorf("%s has no record of user %s's decisions (user_hash %s): the scan saw nothing", name, u, hash)
			}
		}
	}
	for _, r := range recs {
		if !bytes.Contains(surfaces["GET /v1/decisions/"+r.requestID], []byte(n.tel.Pseudonymize(r.user))) {
			t.Errorf("decision %s does not carry its user's pseudonym", r.requestID)
		}
	}
	var traces strings.Builder
	for name, b := range surfaces {
		if strings.HasPrefix(name, "GET /v1/traces/") {
			traces.Write(b)
		}
	}
	for _, want := range []string{
		`"url.path":"/v1/users/` + n.tel.Pseudonymize(piiPhone) + `"`,
		`"url.path":"/v1/users/` + n.tel.Pseudonymize(piiEmail) + `"`,
		`"url.path":"/v1/users/` + n.tel.Pseudonymize(piiRawUser) + `/recommendations"`,
		`"http.route":"/v1/users/{user_id}"`,
		`"name":"POST /v1/events"`,
		`"name":"GenerateRecommendations"`,
	} {
		if !strings.Contains(traces.String(), want) {
			t.Errorf("kept traces lack %s: the scan did not see the requests' spans", want)
		}
	}
}
