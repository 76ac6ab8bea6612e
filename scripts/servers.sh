# shellcheck shell=bash
# Real servers for the integration tests, to be sourced by scripts/test (or
# by hand: `source scripts/servers.sh; servers_init; servers_start_jaeger`).
#
# Every server listens on 127.0.0.1 on a free port, keeps its data and log
# in a temporary directory of this run, and is polled for readiness (never a
# fixed sleep). servers_stop stops what was started and removes the
# directory; scripts/test calls it from an EXIT trap.
#
# Jaeger is built once from the tools module tools/jaeger (pinned there)
# into the git-ignored .tools/ folder, and rebuilt only when that module's
# go.mod or go.sum changes; the DuckDB query tool (tools/duckdb) likewise.
# The OpenTelemetry Collector is built the same way from
# deploy/otel-collector/builder.yaml (rebuilt when it or the builder's
# version changes) and VictoriaLogs installed at a pinned version; the
# collector tests start their own collector from that binary, since only
# they know the ports of what it forwards to. Prometheus and promtool come
# from the Debian package `prometheus`; the Prometheus test starts its own
# server, since only it knows the port of the node it scrapes. The
# container image is built with Debian's podman.

servers_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
servers_dir=""
servers_pids=()

# servers_init creates the run's temporary directory.
servers_init() {
  if [ -z "$servers_dir" ]; then
    servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/sightline-servers.XXXXXX")
  fi
}

# servers_port_free PORT succeeds when nothing accepts connections on
# 127.0.0.1:PORT.
servers_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# servers_free_port prints a port that is free on 127.0.0.1, below the
# kernel's ephemeral range so outgoing connections do not take it meanwhile.
servers_free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if servers_port_free "$p"; then
      echo "$p"
      return 0
    fi
  done
  echo "servers: no free port found" >&2
  return 1
}

# servers_wait NAME PID TIMEOUT_S CMD... runs CMD every 100ms until it
# succeeds; it fails when PID exits or TIMEOUT_S passes.
servers_wait() {
  local name=$1 pid=$2 timeout=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "servers: $name exited before it was ready" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "servers: $name not ready after ${timeout}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# servers_tcp_open PORT succeeds when 127.0.0.1:PORT accepts connections.
servers_tcp_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# servers_build_jaeger builds .tools/jaeger unless an up-to-date binary is
# there; it prints the binary's path.
servers_build_jaeger() {
  local bin="$servers_root/.tools/jaeger"
  local stamp="$bin.stamp"
  local want
  want=$(cat "$servers_root/tools/jaeger/go.mod" "$servers_root/tools/jaeger/go.sum" | sha256sum | cut -d' ' -f1)
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$bin"
    return 0
  fi
  mkdir -p "$servers_root/.tools"
  echo "servers: building Jaeger into .tools/ (takes minutes the first time)" >&2
  (cd "$servers_root/tools/jaeger" && go build -buildvcs=false -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >&2 || return 1
  mv "$bin.tmp" "$bin"
  echo "$want" >"$stamp"
  echo "$bin"
}

# The OpenTelemetry Collector Builder (ocb) release that builds the
# collector of deploy/otel-collector/builder.yaml; the manifest pins every
# component to the same release (stable modules v1.67.0).
servers_ocb_version=v0.161.0
# VictoriaLogs, the log store of the log tests (a stand-in for Loki, which
# cannot be installed here).
servers_victorialogs_version=v1.52.1

# servers_build_otelcol builds .tools/otelcol, the collector distribution of
# deploy/otel-collector/builder.yaml, with ocb $servers_ocb_version (itself
# installed once into .tools/), unless an up-to-date binary is there: it is
# rebuilt only when the manifest (comments aside) or the builder's version
# changes. It prints the binary's path.
servers_build_otelcol() {
  local bin="$servers_root/.tools/otelcol"
  local stamp="$bin.stamp"
  local manifest="$servers_root/deploy/otel-collector/builder.yaml"
  local want
  # Comments do not count: editing them does not cost a rebuild.
  want=$({ echo "ocb $servers_ocb_version"; grep -v '^[[:space:]]*#' "$manifest"; } | sha256sum | cut -d' ' -f1)
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$bin"
    return 0
  fi
  mkdir -p "$servers_root/.tools"
  local ocb="$servers_root/.tools/ocb-$servers_ocb_version"
  if [ ! -x "$ocb" ]; then
    echo "servers: installing the collector builder $servers_ocb_version into .tools/" >&2
    rm -rf "$ocb.d"
    GOBIN="$ocb.d" go install "go.opentelemetry.io/collector/cmd/builder@$servers_ocb_version" >&2 || return 1
    mv "$ocb.d/builder" "$ocb" && rm -rf "$ocb.d"
  fi
  # The manifest's output_path (./_otelcol) is relative to the working
  # directory: build in a scratch folder of .tools/ and keep the binary.
  local work="$servers_root/.tools/otelcol-build"
  rm -rf "$work" && mkdir -p "$work"
  echo "servers: building the OpenTelemetry Collector into .tools/ (takes minutes the first time)" >&2
  (cd "$work" && "$ocb" --config "$manifest") >&2 || return 1
  mv "$work/_otelcol/sightline-otelcol" "$bin"
  rm -rf "$work"
  echo "$want" >"$stamp"
  echo "$bin"
}

# The linter scripts/test runs, with the committed .golangci.yml.
servers_golangci_lint_version=v2.15.0

# servers_go_install NAME PACKAGE VERSION installs the Go command PACKAGE at
# VERSION (from the module proxy) as .tools/NAME unless that version is
# there; it prints the binary's path.
servers_go_install() {
  local name=$1 pkg=$2 version=$3
  local bin="$servers_root/.tools/$name"
  local stamp="$bin.stamp"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    echo "$bin"
    return 0
  fi
  mkdir -p "$servers_root/.tools"
  echo "servers: installing $name $version into .tools/ (takes minutes the first time)" >&2
  rm -rf "$bin.d"
  GOBIN="$bin.d" go install "$pkg@$version" >&2 || return 1
  mv "$bin.d/${pkg##*/}" "$bin" && rm -rf "$bin.d"
  echo "$version" >"$stamp"
  echo "$bin"
}

# servers_build_golangci_lint installs .tools/golangci-lint at
# $servers_golangci_lint_version; it prints the binary's path.
servers_build_golangci_lint() {
  servers_go_install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$servers_golangci_lint_version"
}

# servers_build_victorialogs installs .tools/victoria-logs at
# $servers_victorialogs_version; it prints the binary's path.
servers_build_victorialogs() {
  servers_go_install victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs "$servers_victorialogs_version"
}

# servers_build_duckdb builds .tools/duckdb (tools/duckdb: runs one SQL
# query with the DuckDB Go bindings and prints the rows as JSON) unless an
# up-to-date binary is there, and exports SIGHTLINE_TEST_DUCKDB, its path,
# for the decision log's read-back test (internal/decisionlog).
servers_build_duckdb() {
  local bin="$servers_root/.tools/duckdb"
  local stamp="$bin.stamp"
  local want
  want=$(cat "$servers_root/tools/duckdb/go.mod" "$servers_root/tools/duckdb/go.sum" | sha256sum | cut -d' ' -f1)
  if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$servers_root/.tools"
    echo "servers: building the DuckDB query tool into .tools/ (cgo)" >&2
    (cd "$servers_root/tools/duckdb" && CGO_ENABLED=1 go build -buildvcs=false -o "$bin.tmp" .) >&2 || return 1
    mv "$bin.tmp" "$bin"
    echo "$want" >"$stamp"
  fi
  export SIGHTLINE_TEST_DUCKDB="$bin"
  echo "servers: duckdb query tool $SIGHTLINE_TEST_DUCKDB" >&2
}

# servers_start_jaeger builds (if needed) and starts Jaeger with in-memory
# storage, then exports SIGHTLINE_TEST_JAEGER_OTLP (OTLP gRPC host:port)
# and SIGHTLINE_TEST_JAEGER_QUERY (base URL of the query API).
servers_start_jaeger() {
  servers_init
  local bin
  bin=$(servers_build_jaeger) || return 1
  local dir="$servers_dir/jaeger"
  mkdir -p "$dir"
  local otlp query qgrpc health
  otlp=$(servers_free_port) && query=$(servers_free_port) && qgrpc=$(servers_free_port) && health=$(servers_free_port) || return 1
  (
    cd "$dir" &&
      JAEGER_OTLP_GRPC_PORT=$otlp JAEGER_QUERY_HTTP_PORT=$query JAEGER_QUERY_GRPC_PORT=$qgrpc JAEGER_HEALTH_PORT=$health \
        exec "$bin" --config "$servers_root/tools/jaeger/config.yaml"
  ) >"$dir/jaeger.log" 2>&1 &
  local pid=$!
  servers_pids+=("$pid")
  if ! servers_wait jaeger "$pid" 60 curl -sf "http://127.0.0.1:$query/api/services" ||
    ! servers_wait jaeger "$pid" 30 servers_tcp_open "$otlp"; then
    tail -n 30 "$dir/jaeger.log" >&2
    return 1
  fi
  export SIGHTLINE_TEST_JAEGER_OTLP="127.0.0.1:$otlp"
  export SIGHTLINE_TEST_JAEGER_QUERY="http://127.0.0.1:$query"
  echo "servers: jaeger ready: OTLP gRPC $SIGHTLINE_TEST_JAEGER_OTLP, query $SIGHTLINE_TEST_JAEGER_QUERY (log $dir/jaeger.log)" >&2
}

# servers_start_victorialogs installs (if needed) and starts VictoriaLogs
# with a data directory of this run, then exports SIGHTLINE_TEST_VICTORIALOGS
# (its base URL: OTLP logs go to $URL/insert/opentelemetry/v1/logs, LogsQL
# queries to $URL/select/logsql/query).
servers_start_victorialogs() {
  servers_init
  local bin
  bin=$(servers_build_victorialogs) || return 1
  local dir="$servers_dir/victorialogs" port
  mkdir -p "$dir/data"
  port=$(servers_free_port) || return 1
  "$bin" -httpListenAddr="127.0.0.1:$port" -storageDataPath="$dir/data" -retentionPeriod=1d \
    -loggerLevel=WARN >"$dir/victorialogs.log" 2>&1 &
  local pid=$!
  servers_pids+=("$pid")
  if ! servers_wait victorialogs "$pid" 30 curl -sf "http://127.0.0.1:$port/health"; then
    tail -n 30 "$dir/victorialogs.log" >&2
    return 1
  fi
  export SIGHTLINE_TEST_VICTORIALOGS="http://127.0.0.1:$port"
  echo "servers: victorialogs ready on $SIGHTLINE_TEST_VICTORIALOGS (log $dir/victorialogs.log)" >&2
}

# servers_build_image builds the container image of the Containerfile with
# podman (deploy/container/build.sh), saves it as a docker-archive in the
# run's directory and exports SIGHTLINE_TEST_IMAGE, its path, for the image
# test (internal/stacktest). It prints the image's size.
servers_build_image() {
  servers_init
  command -v podman >/dev/null || {
    echo "servers: podman not installed (apt-get install -y --no-install-recommends podman)" >&2
    return 1
  }
  local tag=localhost/sightline:test archive="$servers_dir/image.tar" size
  "$servers_root/deploy/container/build.sh" "$tag" >&2 || return 1
  rm -f "$archive"
  size=$(podman image inspect --format '{{.Size}}' "$tag") &&
    podman save --quiet --format docker-archive -o "$archive" "$tag" || return 1
  # The archive is what the test reads: keep nothing in podman's store.
  podman rmi --force "$tag" >/dev/null 2>&1 || true
  export SIGHTLINE_TEST_IMAGE="$archive"
  echo "servers: image $tag built, $size bytes uncompressed (podman image inspect), saved to $archive" >&2
}

# servers_find_prometheus exports SIGHTLINE_TEST_PROMETHEUS and
# SIGHTLINE_TEST_PROMTOOL, the paths of the Debian binaries.
servers_find_prometheus() {
  local prom tool
  prom=$(command -v prometheus) && tool=$(command -v promtool) || {
    echo "servers: prometheus or promtool not installed (apt-get install -y --no-install-recommends prometheus)" >&2
    return 1
  }
  export SIGHTLINE_TEST_PROMETHEUS="$prom" SIGHTLINE_TEST_PROMTOOL="$tool"
}

# servers_start_prometheus CONFIG starts Prometheus with CONFIG (a
# prometheus.yml) and its own TSDB directory, and exports
# SIGHTLINE_PROMETHEUS_URL. For manual runs and checks that know their
# scrape targets in advance.
servers_start_prometheus() {
  servers_init
  servers_find_prometheus || return 1
  local dir="$servers_dir/prometheus"
  mkdir -p "$dir/data"
  local port
  port=$(servers_free_port) || return 1
  "$SIGHTLINE_TEST_PROMETHEUS" --config.file="$1" --web.listen-address="127.0.0.1:$port" \
    --storage.tsdb.path="$dir/data" --enable-feature=exemplar-storage \
    >"$dir/prometheus.log" 2>&1 &
  local pid=$!
  servers_pids+=("$pid")
  if ! servers_wait prometheus "$pid" 60 curl -sf "http://127.0.0.1:$port/-/ready"; then
    tail -n 30 "$dir/prometheus.log" >&2
    return 1
  fi
  export SIGHTLINE_PROMETHEUS_URL="http://127.0.0.1:$port"
}

# servers_stop stops every server started here (TERM, then KILL after 10s)
# and removes the temporary directory.
servers_stop() {
  local pid i
  for pid in "${servers_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${servers_pids[@]}"; do
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  servers_pids=()
  if [ -n "$servers_dir" ]; then
    rm -rf "$servers_dir"
    servers_dir=""
  fi
}

# servers_start_redis starts a throwaway redis-server (Debian package
# redis-server) with no persistence and exports SIGHTLINE_TEST_REDIS
# (host:port) for the Redis feature-store tests.
servers_start_redis() {
  servers_init
  command -v redis-server >/dev/null || {
    echo "servers: redis-server not installed (apt-get install -y --no-install-recommends redis-server)" >&2
    return 1
  }
  local dir="$servers_dir/redis" port
  mkdir -p "$dir"
  port=$(servers_free_port) || return 1
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" &
  local pid=$!
  servers_pids+=("$pid")
  if ! servers_wait redis "$pid" 10 redis-cli -h 127.0.0.1 -p "$port" ping; then
    tail -n 30 "$dir/redis.log" >&2
    return 1
  fi
  export SIGHTLINE_TEST_REDIS="127.0.0.1:$port"
  # The cluster test (internal/cluster) runs, stops and restarts
  # redis-servers of its own from this binary.
  SIGHTLINE_TEST_REDIS_SERVER=$(command -v redis-server)
  export SIGHTLINE_TEST_REDIS_SERVER
  echo "servers: redis ready on $SIGHTLINE_TEST_REDIS (log $dir/redis.log)" >&2
}
