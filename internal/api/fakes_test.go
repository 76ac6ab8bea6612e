package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// fakeRecommender answers with count items named after the request and
// keeps every decision. A user id of "boom" makes it panic.
type fakeRecommender struct {
	mu        sync.Mutex
	last      engine.Request
	decisions map[string]*engine.Decision
	fallback  engine.Reason
}

func (f *fakeRecommender) RecommendFunc(ctx context.Context, req engine.Request, fn func(*engine.Decision)) error {
	d, err := f.recommend(ctx, req)
	if err != nil {
		return err
	}
	fn(d)
	return nil
}

func (f *fakeRecommender) recommend(ctx context.Context, req engine.Request) (*engine.Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.UserID == "boom" {
		panic("fake recommender exploded")
	}
	d := &engine.Decision{RequestID: req.RequestID, Time: time.Unix(1700000000, 0).UTC(), UserHash: "h1",
		Channel: req.Channel, Variant: "control", ModelVersion: "ftrl-3", Fallback: f.fallback}
	if f.fallback != engine.ReasonNone {
		d.FallbackDetail = "fallback because " + string(f.fallback)
	}
	for i := range req.Count {
		d.Items = append(d.Items, engine.Item{ItemID: fmt.Sprintf("item-%d", i), Score: 1 / float64(i+2), Reason: "model"})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = req
	if f.decisions == nil {
		f.decisions = map[string]*engine.Decision{}
	}
	f.decisions[d.RequestID] = d
	return d, nil
}

func (f *fakeRecommender) Decision(id string) (*engine.Decision, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.decisions[id]
	return d, ok
}

func (f *fakeRecommender) lastRequest() engine.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// fakePublisher keeps events in memory, deduplicating by id.
type fakePublisher struct {
	mu   sync.Mutex
	seen map[string]bool
	evs  []event.Event
	fail error
}

func (p *fakePublisher) Publish(_ context.Context, evs []event.Event) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return 0, p.fail
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	dups := 0
	for _, e := range evs {
		if p.seen[e.ID] {
			dups++
			continue
		}
		p.seen[e.ID] = true
		p.evs = append(p.evs, e)
	}
	return dups, nil
}

func (p *fakePublisher) events() []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]event.Event(nil), p.evs...)
}

// memCatalog is an in-memory catalog that also implements the importer by
// decoding NDJSON lines.
type memCatalog struct {
	mu    sync.Mutex
	users map[string]event.User
	items map[string]event.Item
}

func newMemCatalog() *memCatalog {
	return &memCatalog{users: map[string]event.User{}, items: map[string]event.Item{}}
}

func (c *memCatalog) PutUser(_ context.Context, u event.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users[u.ID] = u
	return nil
}

func (c *memCatalog) PutItem(_ context.Context, it event.Item) error {
	if err := it.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items[it.ID] = it
	return nil
}

func (c *memCatalog) ImportUsers(ctx context.Context, r io.Reader) (api.ImportResult, error) {
	return importLines(r, func(b []byte) error {
		var u event.User
		if err := json.Unmarshal(b, &u); err != nil {
			return err
		}
		return c.PutUser(ctx, u)
	})
}

func (c *memCatalog) ImportItems(ctx context.Context, r io.Reader) (api.ImportResult, error) {
	return importLines(r, func(b []byte) error {
		it := event.Item{Available: true}
		if err := json.Unmarshal(b, &it); err != nil {
			return err
		}
		return c.PutItem(ctx, it)
	})
}

func importLines(r io.Reader, put func([]byte) error) (api.ImportResult, error) {
	var res api.ImportResult
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := put(b); err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, api.LineError{Line: line, Error: err.Error()})
			continue
		}
		res.Imported++
	}
	return res, sc.Err()
}

type fakeStats struct{}

func (fakeStats) Stats(context.Context) any { return statsFixture() }

// env is a Server over real HTTP with its fakes.
type env struct {
	srv  *httptest.Server
	rec  *fakeRecommender
	pub  *fakePublisher
	cat  *memCatalog
	logs *bytes.Buffer
}

func newEnv(t testing.TB, mod func(*api.Config)) *env {
	t.Helper()
	e := &env{rec: &fakeRecommender{}, pub: &fakePublisher{}, cat: newMemCatalog(), logs: &bytes.Buffer{}}
	cfg := api.Config{
		Recommender: e.rec, Publisher: e.pub, Catalog: e.cat, Importer: e.cat, Stats: fakeStats{},
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: e.logs}, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	e.srv = httptest.NewServer(checked(t, s))
	t.Cleanup(e.srv.Close)
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// do sends a request and returns the response with its body read.
func (e *env) do(t testing.TB, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s error = %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s read body: %v", method, path, err)
	}
	return resp, b
}

var errBusDown = errors.New("bus down")
