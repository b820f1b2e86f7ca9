# entraproxy: `make test` is the one command that checks everything, on a
# fresh machine too (it installs what it needs). CI runs exactly it.

GO ?= go
# staticcheck, fetched through the Go module proxy like any module.
STATICCHECK ?= v0.8.2
PKGS := ./...

.PHONY: test setup check unit dist-check fuzz-short e2e e2e-python python-env python-lock npm-deps build dist dist-reproduce demo bench bench-profile fuzz soak clean

test: setup check unit dist-check fuzz-short e2e e2e-python
	@echo "make test: all checks passed"

# Go modules and Debian packages (curl for the REST recipes); the npm
# packages of the end-to-end suite are installed by the e2e target.
setup:
	./scripts/setup.sh

# gofmt on every Go file in the tree, tracked or not (a new file must not
# wait for `git add` to be checked), except installed and built ones.
check:
	@unformatted=$$(find . -name '*.go' -not -path './e2e/node_modules/*' -not -path './bin/*' -print0 | xargs -0 gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=windows $(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) $(PKGS)

unit:
	$(GO) test -race -count=1 $(PKGS)

# The release archives of `make dist`, built twice (the second time from a
# copy of the tree elsewhere) and checked: binary headers, contents against
# the README, the host binary's version, byte-identical builds. Minutes with
# an empty build cache, seconds after.
dist-check:
	$(GO) test -count=1 -timeout 20m -run '^TestRelease$$' ./internal/dist -release

# Each fuzz target for a few seconds; `make fuzz` runs them longer.
FUZZTIME ?= 3s
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	./scripts/fuzz.sh 2m

# The full soak: 2 minutes of 50 clients, 20 s tokens, a 30 s token-endpoint
# outage (docs/RELIABILITY.md). `make test` runs a 20 s version of it.
soak:
	ENTRAPROXYTEST_SOAK=2m $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 10m -v ./cmd/entraproxy/

# The end-to-end suite: real Speech SDK, openai and curl clients through
# bin/entraproxy to bin/fakeazure (e2e/README.md). npm ci runs when
# node_modules is missing or older than the lockfile (npm-deps).
e2e: build npm-deps
	@cd e2e && start=$$(date +%s); npm test; rc=$$?; \
	echo "e2e: suite ran in $$(( $$(date +%s) - start )) s"; exit $$rc

# The Python part of the end-to-end suite (e2e/README.md, "The Python
# suite"): the native Speech SDK 1.45.0 and the newest, openai,
# azure-ai-translation-text, azure-ai-textanalytics and langchain-openai
# through bin/entraproxy, in virtual environments made from hashed lock
# files (scripts/python-env.sh re-uses them while the locks are unchanged).
e2e-python: build npm-deps python-env
	@cd e2e/python && start=$$(date +%s); .venv/bin/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	echo "e2e-python: suite ran in $$(( $$(date +%s) - start )) s"; exit $$rc

python-env:
	@./scripts/python-env.sh

npm-deps:
	@cd e2e && if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
		npm ci --no-audit --no-fund --loglevel=error; fi

# Regenerates the hashed lock files from e2e/python/*.in with pip-tools
# (in a throw-away virtual environment).
python-lock:
	rm -rf e2e/python/.venv-tools
	python3 -m venv e2e/python/.venv-tools
	e2e/python/.venv-tools/bin/pip install --quiet pip-tools
	cd e2e/python && for f in requirements.in requirements-speech-1.45.0.in; do \
		.venv-tools/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
			--no-emit-index-url --no-emit-find-links -o $${f%.in}.txt $$f || exit 1; done
	rm -rf e2e/python/.venv-tools

# Try it without Azure: fake Azure + proxy + one synthesis (bin/demo.wav) and
# one recognition with the real Speech SDK; prints what crossed the proxy.
demo: build npm-deps python-env
	./scripts/demo.sh

build:
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/entraproxy ./cmd/entraproxy
	$(GO) build -o bin/fakeazure ./internal/fakeazure/cmd/fakeazure

# Release archives for linux, darwin and windows on amd64 and arm64, and
# SHA256SUMS, in dist/ (README: Release archives). Byte-identical for the same
# commit: the Go toolchain is go.mod's and every time stamp is the commit's.
DIST_VERSION ?= $(shell git describe --tags --always --dirty)
DIST_COMMIT ?= $(shell git rev-parse HEAD)
DIST_TOOLCHAIN ?= go$(shell sed -n 's/^go //p' go.mod)
dist:
	rm -rf dist
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) GOTOOLCHAIN=$(DIST_TOOLCHAIN) \
		$(GO) run ./internal/dist/cmd/dist -version $(DIST_VERSION) -commit $(DIST_COMMIT) -out dist

# Rebuild the release of HEAD from a fresh clone with an empty build cache and
# compare it with dist/ byte for byte (after make dist, on a clean tree).
dist-reproduce:
	./scripts/dist-reproduce.sh

# entraproxy against direct, nginx, caddy, a minimal Go reverse proxy and
# koding/websocketproxy alone on 127.0.0.1, pinned to cores; writes
# BENCHMARKS.md (about 10 minutes; BENCH_QUICK=1 for a short smoke run).
# Not part of `make test`.
bench:
	./bench/run.sh

# CPU and allocation profiles of the Go WebSocket relays under the
# 100-session echo load, into bench/profile/ (BENCHMARKS.md, Profiling).
bench-profile:
	./bench/run.sh profile

clean:
	rm -rf bin dist e2e/node_modules e2e/python/.venv*
