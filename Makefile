# entraproxy: `make test` is the one command that checks everything, on a
# fresh machine too (it installs what it needs). CI runs exactly it.

GO ?= go
PKGS := ./...

.PHONY: test setup check unit fuzz-short e2e build demo bench fuzz clean

test: setup check unit fuzz-short e2e
	@echo "make test: all checks passed"

# Go modules, Debian packages (curl for the REST recipes) and the npm
# packages of the end-to-end suite.
setup:
	./scripts/setup.sh

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 $(PKGS)

# Each fuzz target for a few seconds; `make fuzz` runs them longer.
FUZZTIME ?= 3s
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	./scripts/fuzz.sh 2m

e2e: build
	cd e2e && npm test

build:
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/entraproxy ./cmd/entraproxy
	$(GO) build -o bin/fakeazure ./internal/fakeazure/cmd/fakeazure

clean:
	rm -rf bin e2e/node_modules
