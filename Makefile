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

.PHONY: build run stop test fuzz bench soak fmt vet clean deps pg-start pg-stop pg-status pg-destroy install-cni

## build: bin/switchyard, bin/switchyard-agent, bin/switchyard-cni (the CNI plugin), bin/cnitool (CNI's test tool),
## bin/syctl (those that exist), bin/sylab and bin/syprobe (the demo lab and its HTTP backends)
build:
	@mkdir -p bin
	$(call build_main,bin/switchyard,controller)
	$(call build_main,bin/switchyard-agent,node)
	$(call build_main,bin/switchyard-cni,node/cmd/switchyard-cni)
	@# cnitool (a test tool) builds in its own module (its otel imports are not in ours), at our
	@# CNI version; without the module proxy or cache it is skipped, not fatal.
	GOBIN=$(CURDIR)/bin $(GO) install github.com/containernetworking/cni/cnitool@$$($(GO) list -m -f '{{.Version}}' github.com/containernetworking/cni) \
		|| echo "warning: bin/cnitool not built (only the CNI tests need it)"
	$(call build_main,bin/syctl,controller/cmd/syctl)
	$(call build_main,bin/sylab,tests/lab/cmd/sylab)
	$(call build_main,bin/syprobe,tests/lab/cmd/syprobe)

## install-cni: install the CNI plugin as $(CNI_BIN_DIR)/switchyard-cni and the link switchyard (default /opt/cni/bin; docs/cni.md);
## the network config goes in /etc/cni/net.d (see docs/cni.md), the agent needs SWITCHYARD_CNI_SOCKET
CNI_BIN_DIR ?= /opt/cni/bin
install-cni:
	@mkdir -p bin
	$(GO) build -o bin/switchyard-cni ./node/cmd/switchyard-cni
	install -D -m 0755 bin/switchyard-cni $(CNI_BIN_DIR)/switchyard-cni
	ln -sfn switchyard-cni $(CNI_BIN_DIR)/switchyard
	@echo "installed $(CNI_BIN_DIR)/switchyard-cni (and the link switchyard, for \"type\": \"switchyard\"); see docs/cni.md for the network config and the agent's SWITCHYARD_CNI_SOCKET"

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
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(PKGS); \
	$(MAKE) --no-print-directory fuzz

## fuzz: every fuzz target (func FuzzXxx) beyond its seed corpus (which `go test`
## runs anyway) for FUZZTIME each; `make test` ends with it (about 25 s in all).
## A target fails when it wrote a failing input to testdata/fuzz/. Go 1.26's fuzz
## coordinator can also fail a target with a bare "context deadline exceeded" as
## -fuzztime ends (golang/go#75804, fixed in Go 1.27): with no new input written,
## that is reported and not counted as a failure.
FUZZTIME ?= 2s
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' controller node openapi tests 2>/dev/null | while read -r f; do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			d="./$$(dirname "$$f")"; corpus="$$d/testdata/fuzz/$$fn"; \
			echo "$(GO) test -run '^$$' -fuzz '^$$fn$$' -fuzztime $(FUZZTIME) $$d"; \
			before="$$(ls "$$corpus" 2>/dev/null || true)"; \
			if ! out="$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$d" 2>&1)"; then \
				echo "$$out"; \
				if [ "$$before" = "$$(ls "$$corpus" 2>/dev/null || true)" ] && echo "$$out" | grep -qx '    context deadline exceeded'; then \
					echo "fuzz: $$fn: no failing input, only Go's -fuzztime deadline race (golang/go#75804): not a failure"; \
				else \
					exit 1; \
				fi; \
			else \
				echo "$$out" | tail -n 2; \
			fi; \
		done; \
	done

## bench: every benchmark against the local PostgreSQL, in the packages that have
## some (or BENCH_PKGS); raw output to docs/bench-raw.txt, figures in docs/benchmarks.md.
## Extra go test flags: e.g. `make bench BENCH_PKGS=./tests/bench BENCH_FLAGS=-benchtime=100x`.
BENCH_FLAGS ?=
bench: deps
	@mkdir -p .local; \
	if [ -z "$${SWITCHYARD_TEST_DATABASE_URL:-}" ]; then \
		$(PG) start; \
		export SWITCHYARD_TEST_DATABASE_URL="$$($(PG) url postgres)"; \
	fi; \
	pkgs="$${BENCH_PKGS:-$$(grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=.local \
		--exclude-dir=node_modules '^func Benchmark' . | xargs -r -n1 dirname | sort -u)}"; \
	cmd="$(GO) test -run '^$$' -bench . -benchmem -timeout $(BENCH_TIMEOUT) -count=1 -p 1 $(BENCH_FLAGS)"; \
	status=0; \
	{ echo "# make bench, $$(date -u +%Y-%m-%dT%H:%M:%SZ), $$($(GO) version), $$(nproc) CPUs, kernel $$(uname -r)"; \
	  echo "# load before: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	  echo "# $$cmd" $$pkgs; \
	  eval "$$cmd" $$pkgs; \
	} | tee .local/bench-raw.txt || status=$$?; \
	echo "# load after: $$(cut -d' ' -f1-3 /proc/loadavg)" >> .local/bench-raw.txt; \
	mv .local/bench-raw.txt docs/bench-raw.txt; \
	echo "wrote docs/bench-raw.txt"; \
	exit $$status

## soak: the chaos soak (tests/soak, not in `make test`): SOAK_DURATION of random operations and faults
## on a 4-host lab with its own PostgreSQL, an invariant checker throughout; the report goes to
## SOAK_REPORT (docs/soak.md); SOAK_SEED repeats a run's choices. E.g. `make soak SOAK_DURATION=5m SOAK_REPORT=.local/soak.md`.
SOAK_DURATION ?= 30m
SOAK_REPORT ?= docs/soak.md
# go test's timeout: only a safety net above any SOAK_DURATION one would run.
SOAK_TIMEOUT ?= 3h
soak: deps
	@mkdir -p "$$(dirname '$(SOAK_REPORT)')"
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT="$(abspath $(SOAK_REPORT))" SOAK_SEED="$${SOAK_SEED:-}" \
		$(GO) test -count=1 -p 1 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' -v ./tests/soak

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
