# vault-plugin-secrets-apitokens. `make dev` and `make test` are the two commands that matter.
VERSION ?= v0.1.0
PLUGIN  := vault-plugin-secrets-apitokens
PKG     := github.com/apitokens/vault-plugin-secrets-apitokens
LDFLAGS := -X $(PKG).Version=$(VERSION)
GO      ?= go
FUZZTIME ?= 10m

.PHONY: all build dev test unit race testacc vet lint fmt fuzz vault clean

all: build

## build: the plugin (version from VERSION into the binary) and the simulator, into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)
	$(GO) build -o bin/apitokens-simulator ./cmd/apitokens-simulator
	@echo "sha256: $$(sha256sum bin/$(PLUGIN) | cut -d' ' -f1)  version: $(VERSION)"

## dev: Vault dev server + simulator + plugin, a real read of every provider; Ctrl-C stops it
dev:
	VERSION=$(VERSION) scripts/dev.sh

## test: everything: format and vet, unit tests under the race detector, the real-Vault suite
test: lint race testacc

unit:
	$(GO) test -count=1 ./...

race:
	$(GO) test -race -count=1 ./...

## testacc: the acceptance suite against a real Vault (built once by scripts/vault.sh)
testacc:
	VAULT_BIN="$$(scripts/vault.sh)" $(GO) test -tags acceptance -count=1 -timeout 40m ./acceptance/...

vet:
	$(GO) vet ./...
	$(GO) vet -tags acceptance ./acceptance/...

lint: vet
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: each fuzz target for FUZZTIME (default 10m)
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseTokenResponse -fuzztime $(FUZZTIME) ./backend/offblocks
	$(GO) test -run '^$$' -fuzz FuzzParseTokenResponse -fuzztime $(FUZZTIME) ./backend/opsnow
	$(GO) test -run '^$$' -fuzz FuzzParsers -fuzztime $(FUZZTIME) ./backend/bloq

## vault: print the path of the Vault binary the suite uses, building it once if needed
vault:
	@scripts/vault.sh

clean:
	rm -rf bin .dev
