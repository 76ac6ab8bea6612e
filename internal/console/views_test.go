package console_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/console"
)

// section returns the part of body from the element with id="id" to the
// next </section>, or fails the test.
func section(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("body has no element with id %q", id)
	}
	j := strings.Index(body[i:], "</section>")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

// rowOf returns the table row whose header cell starts with name.
func rowOf(t *testing.T, html, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<tr[^>]*>\s*<th scope="row"[^>]*>` + regexp.QuoteMeta(name) + `.*?</tr>`)
	m := re.FindString(html)
	if m == "" {
		t.Fatalf("no row for %q in %s", name, html)
	}
	return m
}

func TestClusterPanel(t *testing.T) {
	now := epoch
	withCluster := func(v console.ClusterView) console.Config {
		return console.Config{Stats: fakeStats{}, Cluster: fakeCluster(v), Now: func() time.Time { return now }}
	}
	standby := console.ClusterView{Node: "trainer-b", Role: "trainer", Trainer: "trainer-a"}
	active := fixtureCluster()
	active.Node, active.Role, active.Active = "trainer-a", "trainer", true
	noTrainer := console.ClusterView{Node: "api-1", Role: "api", Problem: "the lease holder could not be read: dial tcp: refused"}
	stale := fixtureCluster()
	stale.Stale, stale.Evaluated = true, epoch.Add(-5*time.Minute)

	tests := []struct {
		name     string
		cfg      console.Config
		want     []string
		wantNot  []string
		rowsWant map[string][]string // API node name → what its first row holds
	}{
		{
			name: "api node",
			cfg:  withCluster(fixtureCluster()),
			want: []string{
				`id="active-trainer"><span class="id">trainer-a</span>`, "api-1", "(api)", "ftrl-43",
				"20 s ago", "the trainer <span class=\"id\">trainer-a</span>", "<strong>2 model versions</strong>",
				`data-live="5"`,
			},
			wantNot: []string{"stale", "partly unreadable"},
			rowsWant: map[string][]string{
				"api-2": {`class="warn"`, "ftrl-42", "not the published version", ">900<", ">90<", "10.00%"},
				"api-1": {">ftrl<", "ftrl-43", ">1200<", ">12<", "1.00%"},
			},
		},
		{
			name:    "active trainer",
			cfg:     withCluster(active),
			want:    []string{"(trainer, active)", "trainer-a", "api-2"},
			wantNot: []string{"standby"},
		},
		{
			name:    "standby trainer",
			cfg:     withCluster(standby),
			want:    []string{"(trainer, standby)", "A standby trainer reads no decisions", `(<span class="id">trainer-a</span>)`},
			wantNot: []string{`<table class="served">`},
		},
		{
			name: "no lease holder, registry unreadable",
			cfg:  withCluster(noTrainer),
			want: []string{`class="bad" id="active-trainer">none holds the lease`, "Cluster state partly unreadable: the lease holder could not be read: dial tcp: refused", "has not published the cluster's served rows yet"},
		},
		{
			name: "stale rows",
			cfg:  withCluster(stale),
			want: []string{"5 min ago, stale", `<dd class="bad"><time`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.cfg)
			_, _, body := get(t, srv, "/")
			panel := section(t, body, "cluster")
			for _, s := range tt.want {
				if !strings.Contains(panel, s) {
					t.Errorf("cluster panel lacks %q:\n%s", s, panel)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(panel, s) {
					t.Errorf("cluster panel has %q", s)
				}
			}
			for node, want := range tt.rowsWant {
				row := rowOf(t, panel, node)
				for _, s := range want {
					if !strings.Contains(row, s) {
						t.Errorf("row of %s lacks %q: %s", node, s, row)
					}
				}
			}
		})
	}
}

// TestClusterPanelOnlyInCluster checks a node outside a cluster (no
// Cluster source, as on --role all) shows no cluster panel.
func TestClusterPanelOnlyInCluster(t *testing.T) {
	srv := newServer(t, console.Config{Stats: fakeStats{}})
	_, _, body := get(t, srv, "/")
	for _, s := range []string{`id="cluster"`, "Active trainer", "<h2 id=\"cluster-h\">"} {
		if strings.Contains(body, s) {
			t.Errorf("overview without a cluster source has %q", s)
		}
	}
}

func TestExperimentsPage(t *testing.T) {
	significant := fixtureExperiment()
	srm := fixtureExperiment()
	srm.SRM = console.SRMView{ChiSquare: 412.5, P: 1.2e-90, Threshold: 0.001, Mismatch: true}
	srm.Variants[0].Decisions = 6000
	worse := fixtureExperiment()
	worse.Variants[0].CTR.Value, worse.Variants[0].Lift.Absolute, worse.Variants[0].Lift.Relative = 0.015, -0.005, -0.25
	none := fixtureExperiment()
	none.Variants[0].PValue = new(0.2)

	tests := []struct {
		name    string
		v       console.ExperimentView
		want    []string
		wantNot []string
		rows    map[string][]string // variant → what its row holds
	}{
		{
			name: "ftrl beats the control",
			v:    significant,
			want: []string{
				`<p class="banner verdict better" role="status" data-variant="ftrl"><strong>ftrl beats popularity</strong>`,
				"CTR 3.00% against 2.00%", "lift +1.00 pp (+50.00%, 95% interval +37.00% to +64.00%)", "always-valid p = 0.0012 &lt; 0.05",
				`<span class="tag resolved">ok</span>`, "0.9656", "(control: popularity)", `data-live="5"`,
			},
			wantNot: []string{`id="srm-banner"`, `id="no-verdict"`, "Not to be trusted"},
			rows: map[string][]string{
				"ftrl": {`class="good"`, ">4512<", ">40210<", ">1206<", "3.00%<br><small>2.84% – 3.17%", ">97<", "8.04%<br><small>6.64% – 9.71%",
					"+1.00 pp <small>(+50.00%)</small><br><small>+0.78 pp to +1.22 pp", "0.0012", "0.27 pp<br><small>13.50% of control", "better, p &lt; 0.05"},
				"popularity": {`<span class="tag">control</span>`, "baseline", ">4488<"},
				"ranker":     {"not enough data", "0.9300", "no difference shown yet"},
			},
		},
		{
			name: "sample ratio mismatch",
			v:    srm,
			want: []string{
				`<p class="banner firing" role="alert" id="srm-banner"><strong>Sample ratio mismatch.</strong>`, "chi-square p = &lt; 0.0001, under 0.001",
				`<span class="tag firing">mismatch</span>`, "412.50", "Not to be trusted while the split is broken.",
			},
		},
		{
			name: "ftrl trails the control",
			v:    worse,
			want: []string{`<p class="banner verdict worse"`, "<strong>ftrl trails popularity</strong>", "lift -0.50 pp (-25.00%"},
			rows: map[string][]string{"ftrl": {`class="bad"`, `<span class="tag firing">worse, p &lt; 0.05</span>`}},
		},
		{
			name:    "no difference yet",
			v:       none,
			want:    []string{`<p class="note" id="no-verdict">No variant differs from the control popularity at p &lt; 0.05 yet.`},
			wantNot: []string{"banner verdict"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, console.Config{Experiments: fakeExperiments(tt.v)})
			status, _, body := get(t, srv, "/experiments")
			body = strings.ReplaceAll(body, "&#43;", "+") // html/template's escape of a sign
			if status != 200 {
				t.Fatalf("GET /experiments status = %d, want 200", status)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET /experiments body lacks %q", s)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(body, s) {
					t.Errorf("GET /experiments body has %q", s)
				}
			}
			arms := section(t, body, "arms-h")
			for v, want := range tt.rows {
				row := rowOf(t, arms, v)
				for _, s := range want {
					if !strings.Contains(row, s) {
						t.Errorf("row of %s lacks %q: %s", v, s, row)
					}
				}
			}
		})
	}
}

// TestExperimentsShares checks the sample ratio table's expected share
// (from the split's weights) and observed share (of the decisions).
func TestExperimentsShares(t *testing.T) {
	srv := newServer(t, console.Config{Experiments: fakeExperiments(fixtureExperiment())})
	_, _, body := get(t, srv, "/experiments")
	srm := section(t, body, "srm-h")
	for v, want := range map[string][]string{
		"ftrl":       {">45.00<", ">45.00%<", ">45.12%<", ">4512<"},
		"popularity": {">45.00%<", ">44.88%<"},
		"ranker":     {">10.00%<", ">10.00%<", ">1000<"},
	} {
		row := rowOf(t, srm, v)
		for _, s := range want {
			if !strings.Contains(row, s) {
				t.Errorf("sample ratio row of %s lacks %q: %s", v, s, row)
			}
		}
	}
}

// policySection returns the Evaluate page's section of the target spec.
func policySection(t *testing.T, body, spec string) string {
	t.Helper()
	i := strings.Index(body, `<section class="policy" data-policy="`+spec+`"`)
	if i < 0 {
		t.Fatalf("Evaluate page has no section for %q", spec)
	}
	return body[i : i+strings.Index(body[i:], "</section>")]
}

func TestEvaluatePage(t *testing.T) {
	srv := newServer(t, console.Config{Evaluations: fakeEvaluations(fixtureEvaluation())})
	status, _, body := get(t, srv, "/evaluate")
	if status != 200 {
		t.Fatalf("GET /evaluate status = %d, want 200", status)
	}
	for _, want := range []string{
		`href="/evaluate" aria-current="page"`, "2026-03-01 12:00:00 UTC", "41s", ">120000<", ">600000<", ">631000<",
		"A recommendation is a slate: each position is estimated on its own", "2.10% <small>(2.05% – 2.15%)</small>",
		"Run another evaluation", "sightline evaluate --data-dir /var/lib/sightline --policy popularity",
		"<code>/var/lib/sightline/evaluations/last.json</code>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /evaluate body lacks %q", want)
		}
	}

	pop := policySection(t, body, "popularity")
	for _, want := range []string{
		`<span class="tag ok">trustworthy</span>`, `<p class="banner trusted verdict" role="status"><strong>Trustworthy.</strong>`,
		"Doubly robust CTR per slot 2.31% (2.21% – 2.41%) against 2.10% served",
		"48000 <small>slots, 8.00% of 600000</small>", "2.00% <small>(at most 10.00%)</small>",
		`<tr data-estimator="ips"><th scope="row">IPS</th>`, "2.32%<br><small>2.12% – 2.52%</small>",
		`<tr data-estimator="dr"><th scope="row">DR</th>`,
	} {
		if !strings.Contains(pop, want) {
			t.Errorf("popularity section lacks %q", want)
		}
	}
	if strings.Contains(pop, "<details") || strings.Contains(pop, `class="bad"`) {
		t.Errorf("the trustworthy popularity section hides its figures or marks a diagnostic bad")
	}

	snap := policySection(t, body, "snapshot:/tmp/ftrl-greedy.snap")
	for _, want := range []string{
		`<span class="tag firing">not trustworthy</span>`,
		`<div class="banner untrusted verdict" role="alert"><p><strong>Not trustworthy: do not decide on these estimates.</strong>`,
		"<li>The effective sample size is below 100 slots or 1.00% of the slots",
		"<li>More than 10.00% of the target&#39;s choices are ones the logging policy could never have made",
		`<dd class="bad">80 <small>slots, 0.01% of 600000</small>`, `<dd class="bad">37.00% <small>(at most 10.00%)</small>`,
		`<details id="figures-1"><summary>The figures anyway (not trustworthy)</summary>`,
		`<li class="bad">the snapshot was trained on the evaluated period</li>`,
	} {
		if !strings.Contains(snap, want) {
			t.Errorf("snapshot section lacks %q", want)
		}
	}
	// The estimates of an untrustworthy target are only inside the
	// closed details, never beside the verdict.
	if i, j := strings.Index(snap, "<details"), strings.Index(snap, `<table class="estimates">`); j < i {
		t.Errorf("the untrustworthy target's estimates come before its <details> (%d < %d)", j, i)
	}
	pos := snap[strings.Index(snap, `<table class="positions">`):]
	p1 := regexp.MustCompile(`(?s)<tr data-position="1">.*?</tr>`).FindString(pos)
	p2 := regexp.MustCompile(`(?s)<tr data-position="2" class="bad">.*?</tr>`).FindString(pos)
	if !strings.Contains(p1, "4.50%<br><small>4.30% – 4.70%</small>") || !strings.Contains(p1, "4.10%") || !strings.Contains(p1, ">900<") {
		t.Errorf("position 1 row = %s, want its IPS, DR estimates and ESS", p1)
	}
	if !strings.Contains(p2, `<td colspan="3"><strong>Not trustworthy:</strong> Clipping removed more than 10.00% of the weight mass`) || strings.Contains(p2, "5.00%") {
		t.Errorf("position 2 row = %s, want the reason instead of the estimates", p2)
	}
}

func TestEvaluatePageWithoutRun(t *testing.T) {
	tests := []struct {
		name    string
		cfg     console.Config
		want    []string
		wantNot []string
	}{
		{
			name: "no run yet",
			cfg:  console.Config{Evaluations: fakeEvaluations{ReportPath: "/d/evaluations/last.json", DecisionsDir: "/d/decisions", DataDir: "/d"}},
			want: []string{"No evaluation has run yet", "sightline evaluate --data-dir /d --policy popularity", "<code>/d/evaluations/last.json</code>"},
		},
		{
			name: "unreadable report",
			cfg:  console.Config{Evaluations: fakeEvaluations{ReportPath: "/d/evaluations/last.json", DecisionsDir: "/d/decisions", Err: "decode report: unexpected end of JSON input"}},
			want: []string{`id="evaluation-error"`, "<code>/d/evaluations/last.json</code> cannot be read: decode report: unexpected end of JSON input", "No evaluation has run yet"},
		},
		{
			name:    "no source",
			cfg:     console.Config{},
			want:    []string{"No evaluation has run yet", "sightline evaluate --data-dir DATA_DIR --policy popularity", "DATA_DIR/evaluations/last.json"},
			wantNot: []string{"evaluation-error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.cfg)
			status, _, body := get(t, srv, "/evaluate")
			if status != 200 {
				t.Fatalf("GET /evaluate status = %d, want 200", status)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET /evaluate body lacks %q", s)
				}
			}
			for _, s := range append(tt.wantNot, `class="policy"`, "Last run") {
				if strings.Contains(body, s) {
					t.Errorf("GET /evaluate body has %q", s)
				}
			}
		})
	}
}
