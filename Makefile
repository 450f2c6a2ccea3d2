# Switchyard. The two commands: `make run` and `make test`. See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on the project's machines; use it when `go` is not on PATH.
ifeq ($(shell command -v go),)
export PATH := $(PATH):/usr/local/go/bin
endif
GO ?= go

PG := deploy/local/postgres.sh
TEST_TIMEOUT ?= 25m
BENCH_TIMEOUT ?= 60m
# Packages to test/bench; e.g. `make test PKGS=./controller/...`.
PKGS ?= ./...

# build_main builds binary $(1) from main package directory $(2) if that package
# has been written yet; a package that exists but fails to build fails the build.
define build_main
	@if compgen -G '$(2)/*.go' >/dev/null; then \
		echo "$(GO) build -o $(1) ./$(2)"; \
		$(GO) build -o $(1) ./$(2); \
	else \
		echo "skip $(1): ./$(2) is not written yet"; \
	fi
endef

.PHONY: build run stop test bench fmt vet clean deps pg-start pg-stop pg-status pg-destroy

## build: bin/switchyard, bin/switchyard-agent, bin/syctl (those that exist), bin/sylab (the demo lab)
build:
	@mkdir -p bin
	$(call build_main,bin/switchyard,controller)
	$(call build_main,bin/switchyard-agent,node)
	$(call build_main,bin/syctl,controller/cmd/syctl)
	$(call build_main,bin/sylab,tests/lab/cmd/sylab)

## run: deps, local PostgreSQL, build, then the controller in the foreground
run: deps build
	@deploy/local/run.sh start

## stop: stop what `make run` started
stop:
	@deploy/local/run.sh stop

## test: every test against the local PostgreSQL (and, where tests need them, real OVS/netns)
test: deps
	@if [ -z "$${SWITCHYARD_TEST_DATABASE_URL:-}" ]; then \
		$(PG) start; \
		export SWITCHYARD_TEST_DATABASE_URL="$$($(PG) url postgres)"; \
	fi; \
	echo "SWITCHYARD_TEST_DATABASE_URL=$$SWITCHYARD_TEST_DATABASE_URL"; \
	echo "$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(PKGS)"; \
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(PKGS)

## bench: every benchmark against the local PostgreSQL; raw output to docs/bench-raw.txt
bench: deps
	@mkdir -p .local; \
	if [ -z "$${SWITCHYARD_TEST_DATABASE_URL:-}" ]; then \
		$(PG) start; \
		export SWITCHYARD_TEST_DATABASE_URL="$$($(PG) url postgres)"; \
	fi; \
	{ echo "# make bench, $$(date -u +%Y-%m-%dT%H:%M:%SZ), $$($(GO) version), $$(nproc) CPUs"; \
	  $(GO) test -run '^$$' -bench . -benchmem -count=1 -p 1 -timeout $(BENCH_TIMEOUT) $(PKGS); \
	} | tee .local/bench-raw.txt; \
	mv .local/bench-raw.txt docs/bench-raw.txt; \
	echo "wrote docs/bench-raw.txt"

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

## clean: remove built binaries (the local database is kept; `make pg-destroy` deletes it)
clean:
	rm -rf bin

deps:
	@deploy/local/deps.sh

pg-start:
	@$(PG) start

pg-stop:
	@$(PG) stop

pg-status:
	@$(PG) status

pg-destroy:
	@$(PG) destroy
