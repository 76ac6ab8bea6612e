#!/usr/bin/env bash
# Checks everything under deploy/ that can be checked offline:
#   - promtool check config on deploy/prometheus/prometheus.yml (and its rules)
#   - promtool check rules and promtool test rules on the alert rules
#   - every alert has a runbook (docs/runbooks/<Alert>.md), a runbook_url that
#     points at it, and at least one test in the promtool unit tests
#   - the tests' group_eval_order names every rule group, in the rules
#     file's order (promtool silently evaluates unlisted groups last)
#   - every PromQL expression of the Grafana dashboards parses: they are
#     written into a temporary rules file as recording rules (Grafana
#     variables replaced by plain values) and checked with promtool.
# Needs promtool (Debian: apt-get install prometheus) and python3.
# PROMTOOL overrides the promtool binary. If OTELCOL names an OpenTelemetry
# Collector binary, the collector config is validated with it too.
set -euo pipefail
cd "$(dirname "$0")/.."

promtool=${PROMTOOL:-promtool}
command -v "$promtool" >/dev/null || { echo "check-deploy: promtool not found (apt-get install -y --no-install-recommends prometheus)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "check-deploy: python3 not found" >&2; exit 1; }

rules=deploy/prometheus/rules/sightline.yml
tests=deploy/prometheus/tests/sightline_test.yml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "-- promtool check config"
"$promtool" check config deploy/prometheus/prometheus.yml

echo "-- promtool check rules"
"$promtool" check rules "$rules"

echo "-- promtool test rules"
"$promtool" test rules "$tests"

echo "-- runbooks and tests for every alert"
python3 - "$rules" "$tests" <<'PY'
import re, sys, os
rules, tests = open(sys.argv[1]).read(), open(sys.argv[2]).read()
alerts = re.findall(r'^\s*- alert:\s*(\S+)', rules, re.M)
urls = re.findall(r'^\s*runbook_url:\s*(\S+)', rules, re.M)
tested = set(re.findall(r'^\s*alertname:\s*(\S+)', tests, re.M))
firing_tested = set()
for block in re.split(r'\n\s*- eval_time:', tests):
    m = re.search(r'alertname:\s*(\S+)', block)
    if m and re.search(r'exp_labels:', block):
        firing_tested.add(m.group(1))
bad = []
if len(urls) != len(alerts):
    bad.append(f"{len(alerts)} alerts but {len(urls)} runbook_url annotations")
base = "https://github.com/sightline/sightline/blob/main/"
for a, u in zip(alerts, urls):
    want = base + f"docs/runbooks/{a}.md"
    if u != want:
        bad.append(f"{a}: runbook_url {u}, want {want}")
    if not os.path.isfile(f"docs/runbooks/{a}.md"):
        bad.append(f"{a}: docs/runbooks/{a}.md missing")
    if a not in tested:
        bad.append(f"{a}: no alert_rule_test in {sys.argv[2]}")
    elif a not in firing_tested:
        bad.append(f"{a}: no test where it fires")
for f in sorted(os.listdir("docs/runbooks")):
    if f.endswith(".md") and f != "README.md" and f[:-3] not in alerts:
        bad.append(f"docs/runbooks/{f}: no alert of that name")
groups = re.findall(r'^\s*- name:\s*(\S+)', rules, re.M)
m = re.search(r'^group_eval_order:\n((?:\s+- \S+\n)+)', tests, re.M)
order = re.findall(r'- (\S+)', m.group(1)) if m else []
if order != groups:
    bad.append(f"{sys.argv[2]}: group_eval_order {order}, want the rule groups in file order {groups}")
if bad:
    print("\n".join(bad)); sys.exit(1)
print(f"  SUCCESS: {len(alerts)} alerts, each with runbook and tests; {len(groups)} groups in group_eval_order")
PY

echo "-- Grafana dashboard expressions"
for dash in deploy/grafana/dashboards/*.json; do
  python3 - "$dash" > "$tmp/dashboard_rules.yml" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
exprs = []  # (rule name saying where the expression is, expression)
def walk(o, where):
    if isinstance(o, dict):
        if "gridPos" in o and "id" in o:
            where = f"panel_{o['id']}"
        if isinstance(o.get("expr"), str) and o["expr"].strip():
            exprs.append((f"{where}_{len(exprs)}", o["expr"]))
        for v in o.values():
            walk(v, where)
    elif isinstance(o, list):
        for v in o:
            walk(v, where)
walk(d, "dashboard")
if not exprs:
    sys.exit(f"{sys.argv[1]}: no expressions found")
def plain(e):
    # Grafana interval variables become durations, every other variable a
    # match-anything regex value (they are only used in =~ matchers).
    e = re.sub(r'\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}', '5m', e)
    return re.sub(r'\$\{?[A-Za-z_][A-Za-z0-9_]*\}?', '.*', e)
print("groups:\n  - name: dashboard\n    rules:")
for name, e in exprs:
    print(f"      - record: dashboard:{name}\n        expr: {json.dumps(plain(e))}")
PY
  echo "$dash: $(grep -c 'record:' "$tmp/dashboard_rules.yml") expressions"
  "$promtool" check rules "$tmp/dashboard_rules.yml"
done

if [ -n "${OTELCOL:-}" ]; then
  echo "-- collector config"
  "$OTELCOL" validate --config=deploy/otel-collector/config.yaml
fi

echo "deploy checks passed"
