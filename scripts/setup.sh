#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: Go modules, curl (the
# REST recipes of the end-to-end suite) and the suite's npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

if ! command -v curl >/dev/null 2>&1; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

if [ -f e2e/package-lock.json ]; then
	(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
