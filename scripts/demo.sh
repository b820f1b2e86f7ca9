#!/usr/bin/env bash
# make demo: entraproxy in front of a local fake Azure, driven by the real
# Speech SDK. Needs Go (to build) and Node 20+ with npm; no Azure account.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x bin/entraproxy ] || [ ! -x bin/fakeazure ]; then
	make --no-print-directory build
fi
if [ ! -d e2e/node_modules ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
	(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node e2e/demo.js
