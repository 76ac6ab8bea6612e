package app

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/sightline/sightline/internal/faults"
)

// SetFault switches a fault on or off.
func (n *Node) SetFault(name string, active bool) error {
	if err := n.faults.Switch(name, active); err != nil {
		return err
	}
	n.logger.Warn("fault switched", slog.String("fault", name), slog.Bool("active", active))
	return nil
}

// FaultStates lists every fault with its state.
func (n *Node) FaultStates() []faults.Info { return n.faults.States() }

func (n *Node) adminFaults(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string `json:"name"`
		Active bool   `json:"active"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", `body must be {"name": "<fault>", "active": true|false}: `+err.Error())
		return
	}
	if err := n.SetFault(req.Name, req.Active); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "unknown-fault", err.Error())
		return
	}
	writeJSON(w, map[string]any{"faults": n.FaultStates()})
}

func (n *Node) listFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"faults": n.FaultStates()})
}
