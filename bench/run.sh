#!/usr/bin/env bash
# make bench: entraproxy against direct, nginx, caddy and a minimal Go
# reverse proxy, all on 127.0.0.1, pinned to cores; writes BENCHMARKS.md
# (between its results markers). BENCH_QUICK=1 is a one-minute smoke run.
#
#   BENCH_PROXY_CPUS  taskset list for the proxy under test (default 1)
#   BENCH_LOAD_CPUS   taskset list for load generator + upstream (default 0)
#   BENCH_KEEP        keep the scratch directory (configs, logs)
#   BENCH_ARGS        more benchrun flags, for development (-only http,entraproxy -rounds 5 -c 64)
#
# Everything it starts is stopped when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
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

# 10,000 idle WebSocket sessions need about 20,000 descriptors in the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The contenders: Debian packages, installed when missing and installable.
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "bench: installing ${missing[*]}" >&2
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) ||
		echo "bench: could not install ${missing[*]}; BENCHMARKS.md will say so" >&2
fi

mkdir -p "$tmp/bin"
$GO build -o "$tmp/bin/" ./bench/cmd/benchupstream ./bench/cmd/loadgen ./bench/cmd/wstunnel ./bench/cmd/benchrun
CGO_ENABLED=0 $GO build -trimpath -o "$tmp/bin/entraproxy" ./cmd/entraproxy

quick=false
command="make bench"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
	quick=true
	command="BENCH_QUICK=1 make bench"
fi
taskset -c "$LOAD_CPUS" "$tmp/bin/benchrun" -bin "$tmp/bin" -tmp "$tmp" -out BENCHMARKS.md \
	-proxy-cpus "$PROXY_CPUS" -load-cpus "$LOAD_CPUS" -quick="$quick" -command "$command" ${BENCH_ARGS:-} &
runner=$!
wait "$runner"
runner=""
echo "bench: wrote BENCHMARKS.md" >&2
