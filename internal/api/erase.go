package api

import (
	"context"
	"log/slog"
	"net/http"
)

// Eraser erases users, an optional capability of Config.Catalog: when the
// catalog implements it, DELETE /v1/users/{user_id} calls it; otherwise the
// route answers 501. EraseUser is called concurrently and may block on the
// stores until ctx is done.
type Eraser interface {
	// EraseUser erases what the node and the cluster keep of the user id:
	// its profile, its recent activity and its recent decisions. Erasing
	// a user nothing is known of is not an error: erasure is idempotent,
	// and a retry after an error erases what is left. A nil error means the
	// erasure is durable and reaches every node.
	EraseUser(ctx context.Context, id string) (UserErasure, error)
}

// UserErasure is the answer to DELETE /v1/users/{user_id}: what was found
// and erased. A user nothing was known of gets all false and zero, with
// 200 like any other: erasure is idempotent, and saying "not found" would
// tell nothing the caller can act on.
type UserErasure struct {
	// Profile reports that a stored profile was deleted.
	Profile bool `json:"profile"`
	// Activity reports that stored recent activity was deleted.
	Activity bool `json:"activity"`
	// Decisions is the number of this user's recent decisions this node
	// dropped (GET /v1/decisions no longer finds them); the other nodes
	// drop theirs when they apply the erasure from the event stream.
	Decisions int `json:"decisions"`
}

// eraseUser serves DELETE /v1/users/{user_id}.
func (s *Server) eraseUser(w http.ResponseWriter, r *http.Request) {
	er, ok := s.cfg.Catalog.(Eraser)
	if !ok {
		writeProblem(w, r, notImplemented("user erasure"))
		return
	}
	id := r.PathValue("user_id")
	if d := checkID("user_id in the path", id, true); d != "" {
		writeProblem(w, r, badRequest(d))
		return
	}
	res, err := er.EraseUser(r.Context(), id)
	if err != nil {
		s.log.WarnContext(r.Context(), "user erasure failed", slog.Any("err", err))
		writeProblem(w, r, unavailable("the user could not be erased completely; retry (erasure is idempotent, so retrying is safe)"))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", &res)
}
