#!/usr/bin/env bash
# Rebuilds the release of HEAD the way a stranger would: a fresh clone in a
# temporary directory, an empty Go build cache, `make dist` there. Then
# compares its SHA256SUMS with dist/SHA256SUMS: equal files mean byte-identical
# archives. Run it after `make dist` on a tree without uncommitted changes
# (the version names the archives, and a dirty tree's says -dirty).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f dist/SHA256SUMS ]; then
	echo "dist-reproduce: no dist/SHA256SUMS; run make dist first" >&2
	exit 2
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "dist-reproduce: the tree has uncommitted changes, which a clone of HEAD lacks; commit them, then make dist" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-hardlinks . "$tmp/src"
git -C "$tmp/src" checkout --quiet --detach "$(git rev-parse HEAD)"
GOCACHE="$tmp/gocache" make --no-print-directory -C "$tmp/src" dist DIST_VERSION="$(git describe --tags --always --dirty)"

if diff dist/SHA256SUMS "$tmp/src/dist/SHA256SUMS"; then
	echo "dist-reproduce: $(git rev-parse HEAD) rebuilt in $tmp/src with an empty build cache: SHA256SUMS identical"
else
	echo "dist-reproduce: the rebuild differs from dist/ (above)" >&2
	exit 1
fi
