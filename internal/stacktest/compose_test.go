package stacktest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// composeDir is the compose example, relative to the repository root.
const composeDir = "deploy/compose"

// composeBlocks splits a compose file into its top-level x- blocks and its
// services: block name to the lines under it. It relies on the file's
// two-space indentation.
func composeBlocks(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	top, cur := "", ""
	for line := range strings.SplitSeq(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		name, _, _ := strings.Cut(trimmed, ":")
		switch {
		case indent == 0:
			top, cur = name, ""
			if strings.HasPrefix(name, "x-") {
				cur = name
				blocks[cur] = nil
			}
		case indent == 2 && top == "services":
			cur = name
			blocks[cur] = nil
		case cur != "":
			blocks[cur] = append(blocks[cur], line)
		}
	}
	return blocks
}

// serveFlags returns the flag names `sightline serve -h` lists.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(sightlineBin(t), "serve", "-h").CombinedOutput() // exits 0
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["addr"] || !flags["role"] {
		t.Fatalf("sightline serve -h lists no --addr or --role:\n%s", out)
	}
	return flags
}

var (
	commandLine = regexp.MustCompile(`^\s+command: (\[.*\])\s*$`)
	envKey      = regexp.MustCompile(`^\s+([A-Z][A-Z0-9_]*):`)
	hostMount   = regexp.MustCompile(`^\s+- (\.\.?/[^:]+):`)
)

// TestComposeExample checks deploy/compose statically (containers cannot
// run here): every sightline service runs serve with flags serve has, a
// role, Kafka and Redis; every SIGHTLINE_ variable is a flag of serve;
// every variable given to the collector is one its config reads; every
// file mounted from the repository exists; every Prometheus target is a
// service; and the compose Grafana datasources are those of
// deploy/grafana/provisioning, uid for uid.
func TestComposeExample(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, composeDir)
	blocks := composeBlocks(t, filepath.Join(dir, "compose.yaml"))
	flags := serveFlags(t)

	// The shared node settings: SIGHTLINE_ variables are serve flags.
	nodeEnv := map[string]string{}
	for _, line := range blocks["x-node"] {
		if m := envKey.FindStringSubmatch(line); m != nil {
			_, v, _ := strings.Cut(line, ":")
			nodeEnv[m[1]] = strings.TrimSpace(v)
		}
	}
	for k := range nodeEnv {
		if f, ok := strings.CutPrefix(k, "SIGHTLINE_"); ok && !flags[strings.ReplaceAll(strings.ToLower(f), "_", "-")] {
			t.Errorf("x-node sets %s: serve has no flag --%s", k, strings.ReplaceAll(strings.ToLower(f), "_", "-"))
		}
	}
	for k, want := range map[string]string{"SIGHTLINE_BUS": "kafka", "SIGHTLINE_FEATURE_STORE": "redis"} {
		if nodeEnv[k] != want {
			t.Errorf("x-node sets %s=%q, want %q (api and trainer nodes need it)", k, nodeEnv[k], want)
		}
	}

	roles := map[string]int{}
	for name, lines := range blocks {
		if !slices.Contains(lines, "    <<: *node") {
			continue
		}
		var args []string
		for _, line := range lines {
			if m := commandLine.FindStringSubmatch(line); m != nil {
				if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
					t.Errorf("%s: command %s: %v", name, m[1], err)
				}
			}
		}
		if len(args) == 0 || args[0] != "serve" {
			t.Errorf("%s: command %q, want serve with flags", name, args)
			continue
		}
		for i, a := range args[1:] {
			f, ok := strings.CutPrefix(a, "--")
			if !ok {
				continue
			}
			f, _, _ = strings.Cut(f, "=")
			if !flags[f] {
				t.Errorf("%s: serve has no flag %s", name, a)
			}
			if f == "role" && i+2 < len(args) {
				roles[args[i+2]]++
			}
		}
	}
	if roles["api"] != 2 || roles["trainer"] != 1 {
		t.Errorf("node roles %v, want 2 api nodes and 1 trainer", roles)
	}

	// The collector's environment: names config.yaml reads.
	cfg, err := os.ReadFile(filepath.Join(root, collectorConfig))
	if err != nil {
		t.Fatal(err)
	}
	collectorEnv := 0
	for _, line := range blocks["otel-collector"] {
		if m := envKey.FindStringSubmatch(line); m != nil {
			collectorEnv++
			if !strings.Contains(string(cfg), "${env:"+m[1]+":") {
				t.Errorf("otel-collector sets %s: %s does not read it", m[1], collectorConfig)
			}
		}
	}
	if collectorEnv == 0 {
		t.Error("otel-collector sets no environment: its config would listen on 127.0.0.1 only")
	}

	// Files mounted from the repository.
	mounts := 0
	for name, lines := range blocks {
		for _, line := range lines {
			if m := hostMount.FindStringSubmatch(line); m != nil {
				mounts++
				if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
					t.Errorf("%s mounts %s: %v", name, m[1], err)
				}
			}
		}
	}
	if mounts == 0 {
		t.Error("no service mounts a file of the repository")
	}

	// Prometheus scrapes services of the compose file.
	prom, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`'([a-z0-9-]+):[0-9]+'`).FindAllStringSubmatch(string(prom), -1) {
		if _, ok := blocks[m[1]]; !ok && m[1] != "localhost" {
			t.Errorf("%s/prometheus.yml scrapes %s: no such service", composeDir, m[0])
		}
	}

	// Grafana: the same datasources in both provisioning files.
	a := datasourceTypes(t, filepath.Join(root, "deploy/grafana/provisioning/datasources/sightline.yml"))
	b := datasourceTypes(t, filepath.Join(dir, "grafana-datasources.yml"))
	if !slices.Equal(a, b) {
		t.Errorf("Grafana datasources (uid=type): deploy/grafana has %v, %s has %v", a, composeDir, b)
	}
	if !slices.Contains(a, "victorialogs=victoriametrics-logs-datasource") || !slices.Contains(a, "loki=loki") {
		t.Errorf("Grafana datasources %v: want the log stores victorialogs and loki", a)
	}
}

// datasourceTypes returns "uid=type" of every datasource of a Grafana
// provisioning file, sorted.
func datasourceTypes(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ds := range strings.Split(string(b), "\n  - name: ")[1:] {
		uid := regexp.MustCompile(`(?m)^    uid: (\S+)`).FindStringSubmatch(ds)
		typ := regexp.MustCompile(`(?m)^    type: (\S+)`).FindStringSubmatch(ds)
		if uid == nil || typ == nil {
			t.Fatalf("%s: a datasource without uid or type:\n%s", path, ds)
		}
		out = append(out, uid[1]+"="+typ[1])
	}
	slices.Sort(out)
	return out
}

// TestComposePrometheusConfig checks the compose example's Prometheus
// configuration, with the rules it loads, using promtool (named by
// SIGHTLINE_TEST_PROMTOOL).
func TestComposePrometheusConfig(t *testing.T) {
	promtool := os.Getenv("SIGHTLINE_TEST_PROMTOOL")
	if promtool == "" {
		t.Skip("SIGHTLINE_TEST_PROMTOOL unset (scripts/test sets it to the Debian promtool)")
	}
	cfg := filepath.Join(repoRoot(t), composeDir, "prometheus.yml")
	out, err := exec.Command(promtool, "check", "config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config %s: %v\n%s", cfg, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS: 1 rule files found") {
		t.Errorf("promtool check config %s did not check the rules file:\n%s", cfg, out)
	}
}
