#!/usr/bin/env bash
# make bench: entraproxy against direct, nginx, caddy, a minimal Go
# reverse proxy and koding/websocketproxy alone, all on 127.0.0.1, pinned to
# cores; writes BENCHMARKS.md (between its results markers). BENCH_QUICK=1
# is a short smoke run.
#
# bench/run.sh profile (make bench-profile): CPU and allocation profiles of
# entraproxy, koding-bare and go-reverseproxy under the 100-session echo
# load, in BENCH_PROFILE_DIR (default bench/profile), with a summary.md;
# BENCHMARKS.md is not touched. entraproxy is profiled as a variant of the
# release build with one file added at build time (go build -overlay) that
# serves bench/benchprof's profiles on 127.0.0.1 when BENCH_PPROF_ADDR_FILE
# is set; the product has no profiling endpoint.
#
#   BENCH_PROXY_CPUS  taskset list for the proxy under test (default 1)
#   BENCH_LOAD_CPUS   taskset list for load generator + upstream (default 0)
#   BENCH_KEEP        keep the scratch directory (configs, logs)
#   BENCH_ARGS        more benchrun flags, for development (-only http,entraproxy -rounds 5 -c 64,
#                     -out /tmp/x.md to leave BENCHMARKS.md alone, -profile-seconds 20)
#
# Everything it starts is stopped when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mode=${1:-bench}
case "$mode" in
bench | profile) ;;
*)
	echo "usage: bench/run.sh [profile]" >&2
	exit 2
	;;
esac
PROXY_CPUS=${BENCH_PROXY_CPUS:-1}
LOAD_CPUS=${BENCH_LOAD_CPUS:-0}
if [ "$(nproc --all)" -lt 2 ] && [ -z "${BENCH_PROXY_CPUS:-}" ]; then
	PROXY_CPUS=0 # one core: everything shares it
fi

tmp=$(mktemp -d /tmp/entraproxy-bench.XXXXXX)
runner=""
cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
		kill -TERM "$runner" 2>/dev/null || true
		wait "$runner" 2>/dev/null || true
	fi
	# Process groups benchrun started and had no chance to stop.
	if [ -f "$tmp/pgids" ]; then
		while read -r pgid; do
			[ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
		done <"$tmp/pgids"
	fi
	if [ "$status" -eq 0 ] && [ -z "${BENCH_KEEP:-}" ]; then
		rm -rf "$tmp"
	else
		echo "bench: logs kept in $tmp" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 idle WebSocket sessions need a little over 20,000 descriptors in
# the proxy (two per session), 10,000 in the load generator and 10,000 in
# the upstream, each its own process with its own limit. Where the hard
# limit is lower (raising it needs CAP_SYS_RESOURCE), benchrun measures the
# most sessions that fit and the report says so.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The contenders: Debian packages, installed when missing and installable
# (under /tmp/apt.lock, so that parallel apt-get runs wait for each other).
missing=()
if [ "$mode" = bench ]; then
	command -v nginx >/dev/null 2>&1 || missing+=(nginx)
	command -v caddy >/dev/null 2>&1 || missing+=(caddy)
fi
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "bench: installing ${missing[*]}" >&2
	lock=()
	command -v flock >/dev/null 2>&1 && lock=(flock /tmp/apt.lock)
	("${lock[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${lock[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null) ||
		echo "bench: could not install ${missing[*]}; BENCHMARKS.md will say so" >&2
fi

mkdir -p "$tmp/bin"
$GO build -o "$tmp/bin/" ./bench/cmd/benchupstream ./bench/cmd/loadgen ./bench/cmd/wstunnel ./bench/cmd/kodingbare ./bench/cmd/benchrun
overlay=()
if [ "$mode" = profile ]; then
	# The profiling variant: the release build plus this one file in
	# package main, added for this build only.
	cat >"$tmp/benchprof_hook.go" <<'EOF'
package main

import "github.com/entraproxy/entraproxy/bench/benchprof"

// Serve profiles when BENCH_PPROF_ADDR_FILE is set (make bench-profile). An
// init, because main is entraproxy's own and this file is added to it.
func init() { benchprof.FromEnv() }
EOF
	printf '{"Replace":{"%s/cmd/entraproxy/zz_benchprof_hook.go":"%s/benchprof_hook.go"}}\n' "$PWD" "$tmp" >"$tmp/overlay.json"
	overlay=(-overlay "$tmp/overlay.json")
fi
CGO_ENABLED=0 $GO build -trimpath "${overlay[@]}" -o "$tmp/bin/entraproxy" ./cmd/entraproxy

quick=false
command="make bench"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
	quick=true
	command="BENCH_QUICK=1 make bench"
fi
modeArgs=(-out BENCHMARKS.md)
if [ "$mode" = profile ]; then
	modeArgs=(-profile "${BENCH_PROFILE_DIR:-bench/profile}" -go "$(command -v "$GO")")
fi
taskset -c "$LOAD_CPUS" "$tmp/bin/benchrun" -bin "$tmp/bin" -tmp "$tmp" "${modeArgs[@]}" \
	-proxy-cpus "$PROXY_CPUS" -load-cpus "$LOAD_CPUS" -quick="$quick" -command "$command" ${BENCH_ARGS:-} &
runner=$!
wait "$runner"
runner=""
echo "bench: done" >&2
