# Heartline: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

VERSION := $(shell sed -n 's/^Version *= *"\(.*\)"/\1/p' FyneApp.toml 2>/dev/null)
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X github.com/heartline/heartline.Commit=$(COMMIT)
BIN     := bin

.PHONY: all build relay desktop run run-relay run-cluster test deps vet test-short fuzz bench screenshots dist dist-desktop load clean

all: build

build: relay desktop

relay:
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/heartline-relay ./relay

# The tags fyne build would add (from FyneApp.toml's [Migrations]).
desktop: deps
	go build -trimpath -tags "$$(go run ./scripts/version -field gotags)" -ldflags '$(LDFLAGS)' -o $(BIN)/heartline ./desktop

# A relay on 127.0.0.1:8080 and, where there is a display, the desktop app joined to it.
run: relay
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(MAKE) --no-print-directory desktop; fi
	scripts/run.sh

# The relay alone, in the foreground.
run-relay: relay
	$(BIN)/heartline-relay --listen 127.0.0.1:8080 --data-dir ./heartline-data

# Redis plus three relays on 127.0.0.1:8081-8083 behind nginx on :8080
# (round robin), everything in ./heartline-cluster. Ctrl-C stops them all.
run-cluster: relay
	@scripts/deps.sh
	scripts/run-cluster.sh

deps:
	@scripts/deps.sh

vet: deps
	go vet ./...

# Every test, with the race detector (network-namespace tests run when root),
# then the relay's suite once more with its rooms in Redis.
# deps installed redis-server, so a Redis test that cannot find it fails
# instead of skipping.
test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	HEARTLINE_REQUIRE_REDIS=1 go test -race -timeout 20m ./...
	@echo "== the relay's suite again, on the Redis engine (every room in a redis-server of the test's own)"
	HEARTLINE_REQUIRE_REDIS=1 HEARTLINE_TEST_ENGINE=redis go test -race -timeout 20m ./relay/server/

test-short: deps
	go test -short ./...

fuzz:
	go test -run '^$$' -fuzz FuzzDecodeClient -fuzztime 30s ./shared/protocol
	go test -run '^$$' -fuzz FuzzDecodeRelay -fuzztime 30s ./shared/protocol

bench:
	go test -run '^$$' -bench . -benchtime 2s ./shared/protocol ./relay/...

screenshots: relay desktop
	scripts/screenshots.sh

dist:
	scripts/dist.sh

dist-desktop: deps
	scripts/dist-desktop.sh

clean:
	rm -rf $(BIN) dist screenshots
