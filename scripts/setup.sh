#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: Go modules, curl (the
# REST recipes of the end-to-end suite) and openssl (its TLS test makes a
# CA). The suite's npm packages are installed by `make e2e`, only when
# missing or older than the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

missing=()
for tool in curl openssl; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
	# CI runs as root; a developer's machine needs sudo.
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "setup: ${missing[*]} missing; install (apt-get install ${missing[*]}) as root, or install sudo" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
