package console

import (
	"context"
	"time"
)

// Cluster reports the cluster a node belongs to, as the node last learned
// it: the active trainer and which API node served which variant with
// which model version. The console calls it on Overview page requests,
// concurrently. It may read the cluster's registry, but must give up when
// ctx is done and should answer from a cache most of the time. A node
// that is not part of a cluster (--role all) has no Cluster source, and
// the Overview shows no cluster panel.
type Cluster interface {
	// Cluster returns the cluster's state as this node knows it.
	Cluster(ctx context.Context) ClusterView
}

// ClusterView is a cluster's state as one of its nodes knows it.
type ClusterView struct {
	// Node is this node's name and Role its role ("api" or "trainer").
	Node string
	Role string
	// Active is set on the trainer that holds the lease.
	Active bool
	// Trainer is the active trainer, the lease holder; "" when no node
	// holds the lease.
	Trainer string
	// Publisher is the trainer that computed Served (the one that held the
	// lease at Evaluated), and ModelVersion the model version it had
	// published then.
	Publisher    string
	ModelVersion string
	// Evaluated is when Served was computed; zero when this node has not
	// read the trainer's quality state yet.
	Evaluated time.Time
	// Stale is set when Evaluated is older than the trainer publishes:
	// the rows may no longer be what the nodes serve.
	Stale bool
	// Served are, per API node and variant, the model version that node
	// served last, with the decisions and fallbacks the trainer has read
	// since it became active; sorted by node and variant.
	Served []ServedView
	// Problem says what could not be read (the registry did not answer);
	// the rest is the last state read.
	Problem string
}

// ServedView is what one API node served to one variant: the model
// version of its latest decisions, and how many decisions (and fallbacks)
// it made with that version.
type ServedView struct {
	Node         string
	Variant      string
	ModelVersion string
	Decisions    int64
	Fallbacks    int64
}

// clusterData is the cluster panel of the Overview page.
type clusterData struct {
	ClusterView
	// Age is how long ago Served was computed, rounded to seconds.
	Age time.Duration
	// Versions is how many distinct model versions the rows show.
	Versions int
	Rows     []servedRow
}

// servedRow is one served row with its fallback share and whether the
// version is the one the trainer had published.
type servedRow struct {
	ServedView
	FallbackShare float64
	// Behind marks a version other than the trainer's published one.
	Behind bool
}

func (c *Console) clusterPanel(ctx context.Context) *clusterData {
	if c.cfg.Cluster == nil {
		return nil
	}
	v := c.cfg.Cluster.Cluster(ctx)
	d := &clusterData{ClusterView: v}
	if !v.Evaluated.IsZero() {
		d.Age = max(c.cfg.Now().Sub(v.Evaluated), 0).Round(time.Second)
	}
	versions := map[string]bool{}
	for _, s := range v.Served {
		r := servedRow{ServedView: s, Behind: v.ModelVersion != "" && s.ModelVersion != v.ModelVersion}
		if s.Decisions > 0 {
			r.FallbackShare = float64(s.Fallbacks) / float64(s.Decisions)
		}
		versions[s.ModelVersion] = true
		d.Rows = append(d.Rows, r)
	}
	d.Versions = len(versions)
	return d
}
