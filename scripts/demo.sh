#!/usr/bin/env bash
# make demo: entraproxy in front of a local fake Azure, driven by the real
# Speech SDKs: JavaScript (e2e/demo.js), then the Python program of the
# report this project started from, with SDK 1.45.0 and the newest
# (e2e/python/demo.py). Needs Go, Node 20+ with npm and Python 3 with venv;
# no Azure account.
set -euo pipefail
cd "$(dirname "$0")/.."

# make demo has built both binaries and installed the npm and PyPI packages.
node e2e/demo.js
echo
echo "=== The Python Speech SDK: the report's program through entraproxy ==="
exec e2e/python/.venv/bin/python e2e/python/demo.py
