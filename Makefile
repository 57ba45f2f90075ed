# Airlock — the two commands a new user needs are `make run` and `make test`.
GO ?= go
export CGO_ENABLED = 0

.PHONY: run build test test-deps lint bench fuzz

## run: start the server on its embedded store (./airlock-data)
run:
	$(GO) run ./cmd/airlock server

## build: a static binary in ./bin/airlock
build:
	$(GO) build -o bin/airlock ./cmd/airlock

## test: install missing Debian test dependencies (as root), then run every test with the race detector
test: test-deps
	CGO_ENABLED=1 $(GO) test -race -timeout 20m ./...

test-deps:
	@./scripts/test-deps.sh

## lint: gofmt, go vet and staticcheck must be clean
lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed on:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

## bench: the Go benchmarks (see docs/benchmarks.md for the scripts under bench/)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./audit ./policy ./mfa ./auth

## fuzz: every fuzz target for FUZZTIME each (default 1m), then execs per target (ONLY=regexp to pick)
fuzz:
	@./scripts/fuzz.sh

## screenshots: regenerate docs/screenshots/*.png from the browser test (needs chromium)
screenshots:
	AIRLOCK_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^(TestE2EBrowser(Console|Admin)|TestE2EAccessReport)$$' ./cmd/airlock
