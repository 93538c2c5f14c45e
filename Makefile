# vault-plugin-secrets-apitokens. `make dev` and `make test` are the two commands that matter.
# The version stamped into the plugin: by default the development version of this checkout,
# backend.go's Version plus the commit (v0.2.0-dev+8fdcfb9; scripts/version.sh), never a
# released one. Only `make release VERSION=vX.Y.Z` on the commit tagged vX.Y.Z makes a release.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell scripts/version.sh)
endif
PLUGIN  := vault-plugin-secrets-apitokens
PKG     := github.com/apitokens/vault-plugin-secrets-apitokens
LDFLAGS := -X $(PKG).Version=$(VERSION)
GO      ?= go
SHELL   := /bin/bash
FUZZTIME ?= 10m

.PHONY: all version build dev test unit race simulate simulate-ci testacc compat vet lint prom-rules fmt fuzz fuzz-ci crash bench soak vault clean release mutate

all: build

## version: print the version a checkout builds as (make build, make dev)
version:
	@echo $(VERSION)

## build: the plugin (version from VERSION into the binary) and the simulator, into bin/
build:
	@[ -n "$(VERSION)" ] || { echo "make build: no VERSION (scripts/version.sh failed above)" >&2; exit 2; }
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)
	$(GO) build -o bin/apitokens-simulator ./cmd/apitokens-simulator
	@echo "sha256: $$(sha256sum bin/$(PLUGIN) | cut -d' ' -f1)  version: $(VERSION)"

## dev: Vault dev server + simulator + plugin, a real read of every provider; Ctrl-C stops it
dev:
	VERSION=$(VERSION) scripts/dev.sh

## test: everything: format and vet, unit tests under the race detector, 2,000 seeds of the
## deterministic simulation, a short run of every fuzz target, the real-Vault suite
test: lint prom-rules race simulate-ci fuzz-ci testacc

unit:
	$(GO) test -count=1 ./...

race:
	$(GO) test -race -count=1 ./...

## simulate: SEEDS seeds (default 200000) of the deterministic simulation of the rotation
## protocol (simulation_test.go), with its coverage map; a failing seed prints its replay line
SEEDS ?= 200000
simulate:
	set -o pipefail; $(GO) test -count=1 -timeout 0 -run 'TestSimulation$$' -seeds=$(SEEDS) -v . | grep -v '^=== RUN'

simulate-ci:
	$(GO) test -count=1 -run 'TestSimulation$$' -seeds=2000 .

## testacc: the acceptance suite against a real Vault (built once by scripts/vault.sh)
testacc:
	VAULT_BIN="$$(scripts/vault.sh)" PROMETHEUS_DIR="$$(scripts/prometheus.sh)" $(GO) test -tags acceptance -count=1 -timeout 40m ./acceptance/...

## compat: the version matrix, before a release: each Vault version with a tools module under
## tools/vault/ (COMPAT_VERSIONS="1.19.5 1.21.0" picks some), built once by scripts/vault.sh,
## runs the acceptance tests that matter for compatibility; prints one table (scripts/compat.sh)
compat:
	scripts/compat.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags acceptance ./acceptance/...

lint: vet
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## prom-rules: promtool on examples/prometheus/ (scripts/prometheus.sh finds promtool, or installs
## Debian's prometheus package): the scrape config's syntax (--syntax-only: a full check stats
## its credentials_file, a Vault token that exists only where Prometheus runs; the acceptance
## suite runs a real Prometheus on this config with a token), the rules, their unit tests
prom-rules:
	@dir="$$(scripts/prometheus.sh)" && \
	  "$$dir/promtool" check config --syntax-only examples/prometheus/prometheus.yml && \
	  "$$dir/promtool" check rules examples/prometheus/alerts.yml && \
	  "$$dir/promtool" test rules examples/prometheus/alerts_test.yml

fmt:
	gofmt -w $$(git ls-files '*.go')

# Every fuzz target, as name:package (scripts/fuzz.sh runs them).
FUZZ_TARGETS := FuzzConfigFields:. FuzzSimulation:. FuzzJWTExpiry:./backend/apiclient FuzzFieldParsers:./backend/apiclient \
	FuzzExcerpt:./backend/apiclient FuzzParseTokenResponse:./backend/offblocks \
	FuzzParseTokenResponse:./backend/opsnow FuzzParsers:./backend/bloq

## fuzz: each fuzz target for FUZZTIME (default 10m; an execution count such as 5000x works too)
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh $(FUZZ_TARGETS)

## fuzz-ci: each fuzz target for 5000 executions (part of make test; a count, not a
## duration, so Go 1.26's fuzz deadline race cannot fail it)
fuzz-ci:
	@FUZZTIME=5000x GO=$(GO) scripts/fuzz.sh $(FUZZ_TARGETS)

## crash: SIGKILL Vault at every rotation step, CRASH_TRIALS times each (default 20); prints a table
CRASH_TRIALS ?= 20
crash:
	VAULT_BIN="$$(scripts/vault.sh)" CRASH_TRIALS=$(CRASH_TRIALS) $(GO) test -tags acceptance -count=1 -timeout 60m \
	  -run TestCrashDuringRotation -v ./acceptance/

## bench: the plugin in a real Vault dev server beside kv-v2 and a floor plugin, one table of
## figures from interleaved rounds (bench/), then the backend's own Go benchmarks
bench:
	VAULT_BIN="$$(scripts/vault.sh)" $(GO) run ./bench
	$(GO) test -run '^$$' -bench . -benchmem .

## release: VERSION=vX.Y.Z (required, not the default), on the commit tagged vX.Y.Z (an
## annotated tag; README, "Releasing"): a zip per platform, SHA256SUMS, and each plugin
## binary's sha256 for `vault plugin register`, in dist/ (scripts/release.sh). A development
## version (-dev) is refused
release:
	@if [ "$(origin VERSION)" = "file" ]; then echo "make release needs VERSION=vX.Y.Z" >&2; exit 2; fi
	VERSION=$(VERSION) GO=$(GO) scripts/release.sh

## mutate: mutation testing, not part of make test (README, "Mutation testing"): gremlins'
## mutants and the team's own list over FILES (module-relative .go files or package
## directories), each against the tests that run its line, MUTATE_SEEDS seeds of the
## simulation (default 300), MUTATE_WORKERS at once (default 2); a table per file, every
## survivor, and .tools/mutate/results.tsv (scripts/mutate.sh, tools/mutate/)
FILES ?= settle.go rotate.go wal.go lease.go reuse.go memo.go schedule.go config.go state.go legacy.go path_config.go path_creds.go \
	backend/bloq backend/offblocks
MUTATE_SEEDS ?= 300
MUTATE_WORKERS ?= 2
mutate:
	MUTATE_SEEDS=$(MUTATE_SEEDS) MUTATE_WORKERS=$(MUTATE_WORKERS) scripts/mutate.sh $(FILES)

## soak: SOAK (default 10m; SOAK=30m make soak) of 6 readers on an OffBlocks and a Bloq config
## (token_reuse on, each rotating every minute) in a real Vault, a sample of the leases' tokens
## checked at the simulator before their lease ends; one table; fails on any read answered
## other than 200 with a token, any token dead inside its lease, a config that never rotated
SOAK ?= 10m
soak:
	VAULT_BIN="$$(scripts/vault.sh)" $(GO) run ./bench -soak=$(SOAK)

## vault: print the path of the Vault binary the suite uses, building it once if needed
vault:
	@scripts/vault.sh

clean:
	rm -rf bin .dev
