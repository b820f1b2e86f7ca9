#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: Go modules, and the
# Debian packages of the end-to-end suite's tools: curl (the REST recipes),
# openssl (its TLS test makes a CA), a JDK and Maven (the Java Speech SDK
# recipe; its jars come from Maven Central in that test) and Chromium (the
# browser protection test drives it with playwright-core, which never
# downloads a browser of its own). The suite's npm packages are installed by
# `make e2e`, only when missing or older than the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

missing=()
for tool_package in curl:curl openssl:openssl java:default-jdk-headless mvn:maven; do
	command -v "${tool_package%%:*}" >/dev/null 2>&1 || missing+=("${tool_package#*:}")
done
[ -x /usr/bin/chromium ] || missing+=(chromium)
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
