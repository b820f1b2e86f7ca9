#!/usr/bin/env bash
# make demo: entraproxy in front of a local fake Azure, driven by the real
# Speech SDKs: JavaScript (e2e/demo.js), then the Python program of the
# report this project started from, with SDK 1.45.0 and the newest
# (e2e/python/demo.py). Needs Go, Node 20+ with npm and Python 3 with venv;
# no Azure account.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x bin/entraproxy ] || [ ! -x bin/fakeazure ]; then
	make --no-print-directory build
fi
if [ ! -d e2e/node_modules ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
	(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
node e2e/demo.js
echo
echo "=== The Python Speech SDK: the report's program through entraproxy ==="
./scripts/python-env.sh
exec e2e/python/.venv/bin/python e2e/python/demo.py
