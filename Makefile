# livecell — `make help` lists the targets.
GO        ?= go
BIN       ?= bin/livecell
PKGS      ?= ./...
FUZZTIME  ?= 60s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/livecell/livecell/internal/buildinfo.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the livecell binary into bin/.
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/livecell

.PHONY: run
run: build ## Start the local world (router + every cell of cells.yaml) on embedded defaults.
	./$(BIN) dev

.PHONY: world
world: build ## Start the multi-process world in the background (control plane, router, one process per cell); state in .world/.
	./$(BIN) world up

.PHONY: world-down
world-down: ## Stop the multi-process world started by `make world`.
	@if [ -x ./$(BIN) ]; then ./$(BIN) world down; else $(GO) run ./cmd/livecell world down; fi

.PHONY: chaos
chaos: build ## Drill: SIGKILL cell CELL (default eu-west) of the running world under players; print time to recover.
	./$(BIN) chaos kill-cell $(or $(CELL),eu-west)

.PHONY: probe
probe: build ## Probe the running local world end to end and print JSON.
	./$(BIN) probe --json

.PHONY: loadtest
loadtest: build ## Load-test the running world with SCENARIO (default loadtest/scenarios/dev.yaml); LOADTEST_FLAGS e.g. --world .world --html report.html.
	./$(BIN) loadtest $(or $(SCENARIO),loadtest/scenarios/dev.yaml) $(LOADTEST_FLAGS)

.PHONY: test
test: fmt-check vet ## Run gofmt check, go vet and all tests with the race detector (gateway suite on both engines).
	$(GO) test -race -count=1 $(PKGS)
	LIVECELL_TEST_GATEWAY_ENGINE=goroutine $(GO) test -race -count=1 ./gateway/

.PHONY: bench-gateway
bench-gateway: build ## Gateway at scale on this machine: 100k sessions, RSS per session, round trips, pushes; prints JSON (BENCH_GATEWAY_FLAGS to change).
	./$(BIN) bench-gateway $(BENCH_GATEWAY_FLAGS)

.PHONY: test-short
test-short: ## Fast tests only (no race detector).
	$(GO) test -short $(PKGS)

.PHONY: vet
vet: ## go vet.
	$(GO) vet $(PKGS)

.PHONY: fmt-check
fmt-check: ## Fail if any file is not gofmt-formatted.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s).
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/protocol/
	$(GO) test -run='^$$' -fuzz='^FuzzReader$$' -fuzztime=$(FUZZTIME) ./internal/protocol/
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./internal/token/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./gateway/backbone/
	$(GO) test -run='^$$' -fuzz='^FuzzParseRTTs$$' -fuzztime=$(FUZZTIME) ./global/placement/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./loadtest/scenario/
	$(GO) test -run='^$$' -fuzz='^FuzzWebhook$$' -fuzztime=$(FUZZTIME) ./cell/store/

.PHONY: bench
bench: ## Run the Go benchmarks (see docs/benchmarks.md for recorded figures).
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

.PHONY: bench-store
bench-store: ## Webhook → push latency (p50/p99) and purchases/s on PostgreSQL + RabbitMQ (LIVECELL_TEST_DATABASE_URL, LIVECELL_TEST_AMQP_URL).
	$(GO) test -run='^$$' -bench='^BenchmarkWebhookToPush$$' -benchtime=400x ./cell/

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
