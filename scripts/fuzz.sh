#!/usr/bin/env bash
# Runs every Go fuzz target for the given time each (default 3s).
#
# A target fails when go test -fuzz fails and writes a failing input to
# testdata/fuzz/<target>/: that input reproduces with go test -run and is a
# bug. The fuzzing engine itself can also end a run with an error and no
# input (a worker reported hung or gone under load:
# https://github.com/golang/go/issues/56238, issues/52569); such a run says
# nothing about the code, so it is tried again, and only three in a row fail.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-3s}

# inputs lists the failing inputs go test has written for target in dir.
inputs() { ls "$1/testdata/fuzz/$2" 2>/dev/null || true; }

for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		for try in 1 2 3; do
			echo "fuzz $pkg $target ($fuzztime)"
			before=$(inputs "$dir" "$target")
			if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"; then
				break
			fi
			if [ "$(inputs "$dir" "$target")" != "$before" ]; then
				echo "fuzz: $target found a failing input (above); rerun it with: go test -run '$target' $pkg" >&2
				exit 1
			fi
			if [ "$try" = 3 ]; then
				echo "fuzz: $target: the fuzzing engine failed three times without a failing input" >&2
				exit 1
			fi
			echo "fuzz: $target: the fuzzing engine failed without a failing input (try $try of 3); trying again" >&2
		done
	done
done
