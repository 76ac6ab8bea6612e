package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/engine"
	"github.com/sightline/sightline/internal/event"
)

// recommend serves POST /v1/recommendations.
func (s *Server) recommend(w http.ResponseWriter, r *http.Request) {
	body := r.Body
	declared := r.ContentLength >= 0 && r.ContentLength <= s.cfg.MaxBodyBytes
	if !declared {
		// A server request with a declared length within the limit is
		// already cut at that length by net/http: no limiter needed (one
		// allocation less on the hot route).
		body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	}
	req, p := decodeRecommendationBody(body)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if declared {
		// A body of a declared length within the limit, read: closed,
		// net/http does not try to discard a rest of it before the answer
		// (a copy and an allocation). Close reads at most what is left of
		// the declared length.
		_ = r.Body.Close()
	}
	s.serveRecommendation(w, r, req)
}

// recommendGet serves GET /v1/users/{user_id}/recommendations.
func (s *Server) recommendGet(w http.ResponseWriter, r *http.Request) {
	req, p := queryRecommendation(r.PathValue("user_id"), r.URL.RawQuery)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	s.serveRecommendation(w, r, req)
}

// queryRecommendation builds a request from a path user id and the query
// parameters count, channel, session_id, page and exclude_item_ids
// (comma-separated).
func queryRecommendation(userID, rawQuery string) (engine.Request, *problem) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return engine.Request{}, badRequest("malformed query string: " + err.Error())
	}
	req := engine.Request{UserID: userID, Count: defaultCount}
	for k, vs := range q {
		if len(vs) != 1 {
			return engine.Request{}, badRequest(fmt.Sprintf("query parameter %s is given %d times; give it once", quote(k), len(vs)))
		}
		v := vs[0]
		switch k {
		case "count":
			n, err := strconv.Atoi(v)
			if err != nil {
				return engine.Request{}, badRequest(fmt.Sprintf("count must be an integer between 1 and %d, got %s", maxCount, quote(v)))
			}
			req.Count = n
		case "channel":
			req.Channel = v
		case "session_id":
			req.SessionID = v
		case "page":
			req.Page = v
		case "exclude_item_ids":
			if v != "" {
				req.Exclude = strings.Split(v, ",")
			}
		default:
			return engine.Request{}, badRequest(fmt.Sprintf("unknown query parameter %s; use count, channel, session_id, page or exclude_item_ids", quote(k)))
		}
	}
	return req, validateRequest(&req, "")
}

func (s *Server) serveRecommendation(w http.ResponseWriter, r *http.Request, req engine.Request) {
	ctx := r.Context()
	req.RequestID = RequestIDFromContext(ctx)
	err := s.cfg.Recommender.RecommendFunc(ctx, req, func(d *engine.Decision) { writeRecommendation(w, d) })
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			writeProblem(w, r, unavailable("the request was canceled or timed out before a decision was made; retry"))
			return
		}
		writeProblem(w, r, badRequest(err.Error()))
	}
}

// writeRecommendation writes the 200 answer of decision d.
func writeRecommendation(w http.ResponseWriter, d *engine.Decision) {
	bp := getBuf()
	b := appendRecommendation(*bp, d)
	writeBytes(w, http.StatusOK, "application/json", b)
	*bp = b
	putBuf(bp)
}

// events serves POST /v1/events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Publisher == nil {
		writeProblem(w, r, notImplemented("events"))
		return
	}
	evs, rejected, p := decodeEventsWithin(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), s.cfg.MaxBatch, s.cfg.Now().UTC(), s.cfg.EventTimes)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	ctx := r.Context()
	resp := eventsResponse{Rejected: rejected}
	if len(evs) > 0 {
		if s.cfg.OnEvents != nil {
			s.cfg.OnEvents(ctx, evs)
		}
		dups, err := s.cfg.Publisher.Publish(ctx, evs)
		if err != nil {
			s.log.WarnContext(ctx, "publish events failed", slog.Int("events", len(evs)), slog.Any("err", err))
			writeProblem(w, r, unavailable(publishFailed(err)))
			return
		}
		resp.Accepted, resp.Duplicates = len(evs), dups
	}
	writeJSON(w, http.StatusAccepted, "application/json", &resp)
}

// publishFailed is the detail of the 503 for a batch the publisher did not
// store whole. It never says that none were stored: a bus may have stored
// part of the batch (a Kafka producer still delivers records it sent
// before the deadline).
func publishFailed(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "the event bus did not acknowledge the events in time; some of them may be stored all the same; retry the whole batch (event ids make retries safe)"
	}
	return "the events could not all be stored durably, though some may have been; retry the whole batch (event ids make retries safe)"
}

// putUser serves PUT /v1/users/{user_id}.
func (s *Server) putUser(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Catalog == nil {
		writeProblem(w, r, notImplemented("users"))
		return
	}
	id := r.PathValue("user_id")
	if d := checkID("user_id in the path", id, true); d != "" {
		writeProblem(w, r, badRequest(d))
		return
	}
	var u event.User
	if p := decodeStrict(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), &u); p != nil {
		writeProblem(w, r, p)
		return
	}
	if u.ID != "" && u.ID != id {
		writeProblem(w, r, badRequest("user_id in the body does not match the user_id in the path; omit it from the body or make them equal"))
		return
	}
	u.ID = id
	if err := u.Validate(); err != nil {
		writeProblem(w, r, badRequest(err.Error()))
		return
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now().UTC()
	}
	s.store(w, r, "user", s.cfg.Catalog.PutUser(r.Context(), u))
}

// putItem serves PUT /v1/items/{item_id}. A body without "available"
// means the item is available.
func (s *Server) putItem(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Catalog == nil {
		writeProblem(w, r, notImplemented("items"))
		return
	}
	id := r.PathValue("item_id")
	if d := checkID("item_id in the path", id, true); d != "" {
		writeProblem(w, r, badRequest(d))
		return
	}
	it := event.Item{Available: true}
	if p := decodeStrict(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), &it); p != nil {
		writeProblem(w, r, p)
		return
	}
	if it.ID != "" && it.ID != id {
		writeProblem(w, r, badRequest("item_id in the body does not match the item_id in the path; omit it from the body or make them equal"))
		return
	}
	it.ID = id
	if err := it.Validate(); err != nil {
		writeProblem(w, r, badRequest(err.Error()))
		return
	}
	s.store(w, r, "item", s.cfg.Catalog.PutItem(r.Context(), it))
}

// store answers a catalog write: 204, 400 for a validation error, 503
// otherwise.
func (s *Server) store(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case isValidation(err):
		writeProblem(w, r, badRequest(err.Error()))
	default:
		s.log.WarnContext(r.Context(), "catalog write failed", slog.String("kind", what), slog.Any("err", err))
		writeProblem(w, r, unavailable("the "+what+" could not be stored; retry"))
	}
}

func isValidation(err error) bool {
	return errors.Is(err, event.ErrMissingField) || errors.Is(err, event.ErrFieldTooLong) ||
		errors.Is(err, event.ErrInvalidValue) || errors.Is(err, event.ErrUnknownType)
}

func (s *Server) importUsers(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Importer == nil {
		writeProblem(w, r, notImplemented("imports"))
		return
	}
	res, err := s.cfg.Importer.ImportUsers(r.Context(), http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes))
	s.imported(w, r, res, err)
}

func (s *Server) importItems(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Importer == nil {
		writeProblem(w, r, notImplemented("imports"))
		return
	}
	res, err := s.cfg.Importer.ImportItems(r.Context(), http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes))
	s.imported(w, r, res, err)
}

func (s *Server) imported(w http.ResponseWriter, r *http.Request, res ImportResult, err error) {
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			p := tooLarge(mbe.Limit)
			p.detail += fmt.Sprintf("; %d lines were imported before the limit, split the file", res.Imported)
			writeProblem(w, r, p)
			return
		}
		s.log.WarnContext(r.Context(), "import failed", slog.Int("imported", res.Imported), slog.Any("err", err))
		writeProblem(w, r, unavailable(fmt.Sprintf("the import stopped after %d lines were imported; retry (imports replace records, so retrying is safe)", res.Imported)))
		return
	}
	if res.Errors == nil {
		res.Errors = []LineError{}
	}
	writeJSON(w, http.StatusOK, "application/json", &res)
}

// getUser serves GET /v1/users/{user_id}: the stored profile and recent
// activity.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	cr, id, ok := s.readTarget(w, r, "user profiles", "user_id")
	if !ok {
		return
	}
	p, found, err := cr.UserProfile(r.Context(), id)
	switch {
	case err != nil:
		s.log.WarnContext(r.Context(), "catalog read failed", slog.String("kind", "user"), slog.Any("err", err))
		writeProblem(w, r, unavailable("the user profile could not be read; retry"))
	case !found:
		writeProblem(w, r, notFound("no profile or activity is stored for this user_id; PUT /v1/users/{user_id} creates a profile"))
	default:
		p.ID = id
		a := &p.Activity
		a.RecentItems, a.RecentCategories, a.ClickedItems = nonNil(a.RecentItems), nonNil(a.RecentCategories), nonNil(a.ClickedItems)
		writeJSON(w, http.StatusOK, "application/json", &p)
	}
}

// getItem serves GET /v1/items/{item_id}: the catalog item.
func (s *Server) getItem(w http.ResponseWriter, r *http.Request) {
	cr, id, ok := s.readTarget(w, r, "catalog items", "item_id")
	if !ok {
		return
	}
	it, found, err := cr.CatalogItem(r.Context(), id)
	switch {
	case err != nil:
		s.log.WarnContext(r.Context(), "catalog read failed", slog.String("kind", "item"), slog.Any("err", err))
		writeProblem(w, r, unavailable("the item could not be read; retry"))
	case !found:
		writeProblem(w, r, notFound("no item with this item_id in the catalog; PUT /v1/items/{item_id} creates it"))
	default:
		it.ID = id
		writeJSON(w, http.StatusOK, "application/json", &it)
	}
}

// readTarget returns the catalog's read side and the id in the path
// parameter param of a read-back route; it answers the request itself (501,
// 400) and returns ok false when there is none or the id is invalid.
func (s *Server) readTarget(w http.ResponseWriter, r *http.Request, what, param string) (cr CatalogReader, id string, ok bool) {
	if cr, ok = s.cfg.Catalog.(CatalogReader); !ok {
		writeProblem(w, r, notImplemented(what))
		return nil, "", false
	}
	id = r.PathValue(param)
	if d := checkID(param+" in the path", id, true); d != "" {
		writeProblem(w, r, badRequest(d))
		return nil, "", false
	}
	return cr, id, true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// decision serves GET /v1/decisions/{request_id}.
func (s *Server) decision(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("request_id")
	if !validRequestID(id) {
		writeProblem(w, r, badRequest(fmt.Sprintf("request_id must be 1 to %d characters of [A-Za-z0-9._-]", maxRequestIDLen)))
		return
	}
	d, ok := s.cfg.Recommender.Decision(id)
	if !ok {
		writeProblem(w, r, notFound(fmt.Sprintf("no decision with request_id %q among recent decisions; only recent decisions are kept", id)))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", d)
}

// stats serves GET /v1/stats.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Stats == nil {
		writeProblem(w, r, notImplemented("stats"))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", s.cfg.Stats.Stats(r.Context()))
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeBytes(w, http.StatusOK, "application/json", []byte(`{"status":"ok"}`+"\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeProblem(w, r, unavailable("not ready: "+err.Error()))
			return
		}
	}
	writeBytes(w, http.StatusOK, "application/json", []byte(`{"status":"ready"}`+"\n"))
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "max-age=300")
	writeBytes(w, http.StatusOK, "application/json", openAPISpec)
}

func notImplemented(what string) *problem {
	return &problem{status: http.StatusNotImplemented, slug: slugNotImplemented,
		detail: "this node does not serve " + what + "; send the request to a node that does"}
}
