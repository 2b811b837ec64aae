# TMC — build, test and verify. `make help` lists the targets.

SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X github.com/tmc-dev/tmc/pkg/version.gitVersion=$(VERSION) \
           -X github.com/tmc-dev/tmc/pkg/version.gitCommit=$(COMMIT) \
           -X github.com/tmc-dev/tmc/pkg/version.buildDate=$(BUILD_DATE)
BIN_DIR ?= bin
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tmc
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(CACHE_DIR)/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)
COMMANDS := workload-syncer tmc-controller tmc-virtual-workspaces kubectl-tmc

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the binaries into bin/
	@mkdir -p $(BIN_DIR)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/ $(addprefix ./cmd/,$(COMMANDS))

.PHONY: test
test: test-binaries test-unit test-integration test-e2e ## Run every test: unit, integration and e2e on real servers (builds the servers once, cached)

.PHONY: test-unit
test-unit: ## Run the unit tests (no servers)
	$(GO) test -race -count=1 ./cmd/... ./pkg/... ./sdk/... ./config/...

.PHONY: test-integration
test-integration: ## Run the integration tests on real etcd, kube-apiserver, controller-manager, scheduler and kwok
	$(GO) test -count=1 -timeout 30m ./test/integration/...
	@hack/check-no-leftover-processes.sh

.PHONY: test-e2e
test-e2e: ## Run the e2e tests: the real binaries as processes on real servers
	$(GO) test -count=1 -parallel 2 -timeout 45m ./test/e2e/...
	@hack/check-no-leftover-processes.sh

.PHONY: bench
bench: test-binaries ## Run the benchmark harness (B0-B7, N=10,000, about 10 minutes), then the micro-benchmarks; see docs/benchmarks.md
	$(GO) run ./test/bench $(BENCH_ARGS)
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/reconciler/workload/syncer/transform/ ./sdk/apis/workload/v1alpha1/

.PHONY: bench-quick
bench-quick: test-binaries ## Run the benchmark harness in quick mode (N=300, about 2 minutes): a smoke test that fails only if the harness breaks
	$(GO) run ./test/bench -quick $(BENCH_ARGS)

.PHONY: test-binaries
test-binaries: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok into the version-keyed cache
	hack/test-binaries.sh

.PHONY: dev-up
dev-up: ## Start the local environment: control plane, two kwok clusters, virtual-workspace server, controller, syncers, sample app
	$(GO) run ./cmd/kubectl-tmc dev up

.PHONY: dev-down
dev-down: ## Stop the local environment; nothing is left running
	$(GO) run ./cmd/kubectl-tmc dev down

.PHONY: codegen
codegen: ## Regenerate deepcopy, CRDs, clientset, listers and informers
	hack/update-codegen.sh

.PHONY: verify-codegen
verify-codegen: ## Fail if generated code is stale
	hack/verify-codegen.sh

.PHONY: verify-gofmt
verify-gofmt: ## Fail if any Go file is not gofmt'ed
	@out=$$(git ls-files -co --exclude-standard '*.go' | xargs gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: verify-vet
verify-vet: ## go vet
	$(GO) vet ./...
	cd hack/tools && $(GO) vet ./etcd ./kwokstages

.PHONY: verify-mod
verify-mod: ## Fail if go mod tidy changes go.mod or go.sum
	@cp go.mod /tmp/tmc-go.mod.bak; cp go.sum /tmp/tmc-go.sum.bak; \
	$(GO) mod tidy; \
	if ! diff -q go.mod /tmp/tmc-go.mod.bak >/dev/null || ! diff -q go.sum /tmp/tmc-go.sum.bak >/dev/null; then \
	  echo "go mod tidy changed go.mod/go.sum:"; git --no-pager diff go.mod go.sum; \
	  cp /tmp/tmc-go.mod.bak go.mod; cp /tmp/tmc-go.sum.bak go.sum; exit 1; fi

$(GOLANGCI_LINT):
	@mkdir -p $(dir $@)
	@echo "building golangci-lint $(GOLANGCI_LINT_VERSION) (once, cached in $(dir $@))"
	GOBIN=$(dir $@)/.gobin-$(GOLANGCI_LINT_VERSION) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(dir $@)/.gobin-$(GOLANGCI_LINT_VERSION)/golangci-lint $@

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint with the explicit linter list in .golangci.yml
	$(GOLANGCI_LINT) run ./...

.PHONY: verify-cross
verify-cross: ## Build kubectl-tmc for macOS (arm64, amd64) and Windows (amd64): the plugin runs wherever kubectl does
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/kubectl-tmc
	GOOS=darwin GOARCH=amd64 $(GO) build -o /dev/null ./cmd/kubectl-tmc
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/kubectl-tmc

.PHONY: verify-imports
verify-imports: ## Fail if code outside test/ (not _test.go) imports github.com/tmc-dev/tmc/test/...
	hack/verify-imports.sh

.PHONY: verify
verify: verify-gofmt verify-vet lint verify-codegen verify-mod verify-cross verify-imports ## All static checks

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN_DIR)
