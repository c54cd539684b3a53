# Strata build. `make run` starts a single-process broker; `make test` runs the suite.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(CURDIR)/.bin
DATA_DIR ?= ./data
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0

.PHONY: all build run test test-short vet fmt proto bench bench-move bench-txn bench-scale bench-scale-rf3 fuzz franz-suite clean tools-proto testenv testenv-tools compat-tools monitoring-check image helm-tools

all: build

# The binary reports these (strata version); without git, the Go build
# information is used instead.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG := github.com/strata-broker/strata/internal/version
LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).revision=$(REVISION)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/strata ./cmd/strata
	$(GO) build -o $(BIN)/txncopy ./cmd/txncopy
	$(GO) build -o $(BIN)/shareconsume ./cmd/shareconsume

run: build
	$(BIN)/strata dev --data-dir $(DATA_DIR)

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# The test environment's etcd and MinIO are built (once, into the user cache)
# before the tests start, so that a first build is not counted in their timeout.
test: build vet testenv-tools compat-tools helm-tools monitoring-check
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	STRATA_BIN=$(BIN)/strata STRATA_HELM=$(HELM) $(GO) test -race -count=1 -timeout 14m ./...

# Checks deploy/prometheus's alert rules with the parser `promtool check rules`
# uses, an alert's expression on sample series, and that every metric the
# rules and deploy/grafana's dashboard query is defined. A module of its own,
# so that Prometheus's dependencies stay out of the broker's; building promtool
# itself would take minutes of every fresh clone's test run. Its end-to-end
# test runs the panels and alerts on a real three-broker cluster (testenv).
monitoring-check: build testenv-tools
	cd deploy/prometheus && $(GO) vet ./... && STRATA_BIN=$(BIN)/strata $(GO) test -count=1 -timeout 5m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Fuzz the record-batch decoder and the Kafka request decoder for a while (the seed corpus runs in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./record -run '^$$' -fuzz FuzzParseBatches -fuzztime $(FUZZTIME)
	$(GO) test ./broker/kafkaapi -run '^$$' -fuzz FuzzRequestFrames -fuzztime $(FUZZTIME)
	$(GO) test ./broker/kafkaapi -run '^$$' -fuzz FuzzSASLExchange -fuzztime $(FUZZTIME)
	$(GO) test ./sasl -run '^$$' -fuzz FuzzScramExchange -fuzztime $(FUZZTIME)
	$(GO) test ./sasl/oauthbearer -run '^$$' -fuzz FuzzClientResponse -fuzztime $(FUZZTIME)
	$(GO) test ./broker/grpcapi -run '^$$' -fuzz FuzzAuthorization -fuzztime $(FUZZTIME)

# franz-go's own integration suite (every kgo test that talks to a broker)
# against a three-broker cluster and SCRAM and OAUTHBEARER listeners; make
# test runs it too (TestFranzGoSuite).
franz-suite: build
	STRATA_BIN=$(BIN)/strata $(GO) test -count=1 -v -timeout 15m -run '^TestFranzGoSuite$$' ./testenv/kafkatests

# Regenerates api/strata/v1 from its .proto. protoc comes from Debian's
# protobuf-compiler; the Go plugins are pinned and built into .bin/.
tools-proto:
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: tools-proto
	PATH=$(TOOLS):$$PATH protoc -I api --go_out=api --go_opt=paths=source_relative \
	  --go-grpc_out=api --go-grpc_opt=paths=source_relative api/strata/v1/strata.proto

# Benchmarks: starts a broker, drives it with `strata bench`, prints the figures
# recorded in BENCHMARKS.md.
bench: build
	./testenv/bench.sh

# Adding a replica to a partition with a large history, tiered against not
# tiered and throttled (BenchmarkAddReplica; STRATA_MOVE_MIB, STRATA_MOVE_RUNS,
# STRATA_MOVE_THROTTLE_MIB), figures recorded in BENCHMARKS.md.
bench-move: build
	STRATA_BIN=$(BIN)/strata go test -run '^$$' -bench BenchmarkAddReplica -benchtime 1x -timeout 90m ./testenv/

# Transactional produce against idempotent produce of the same records, and
# commit latency (BenchmarkTransactionalProduce; STRATA_TXN_RECORDS,
# STRATA_TXN_RUNS), figures recorded in BENCHMARKS.md.
bench-txn: build
	STRATA_BIN=$(BIN)/strata go test -run '^$$' -bench BenchmarkTransactionalProduce -benchtime 1x -timeout 60m ./testenv/

# Partition count: creation, idle memory and CPU, restarts and throughput of
# one broker holding 100, 1,000 and 10,000 partitions
# (BenchmarkPartitionScale; STRATA_SCALE_PARTITIONS, STRATA_SCALE_RUNS,
# STRATA_SCALE_MIB, STRATA_SCALE_SINGLE, STRATA_SCALE_PROFILE[_SECONDS]), figures
# recorded in BENCHMARKS.md.
bench-scale: build
	STRATA_BIN=$(BIN)/strata go test -run '^$$' -bench 'BenchmarkPartitionScale$$' -benchtime 1x -timeout 180m ./testenv/

# The same on three brokers, RF 3: creation, a broker's restart and its
# catch-up (BenchmarkPartitionScaleRF3).
bench-scale-rf3: build
	STRATA_BIN=$(BIN)/strata go test -run '^$$' -bench 'BenchmarkPartitionScaleRF3$$' -benchtime 1x -timeout 180m ./testenv/

# A local cluster for trying replication and failures by hand: etcd, three
# brokers and MinIO, each its own process, addresses in $(TESTENV_DIR)/env.json.
TESTENV_DIR ?= ./testenv-data
testenv: build
	$(BIN)/strata testenv --brokers 3 --dir $(TESTENV_DIR)

# Builds the etcd and MinIO binaries the test environment runs into the user
# cache (~/.cache/strata), so the first test run or `make testenv` does not.
testenv-tools: build
	$(BIN)/strata testenv --tools-only

# Installs the Kafka clients of the compatibility matrix (kcat, kafka-python, kafkajs) when missing.
compat-tools:
	bash testenv/kafkatests/compat/install.sh

# helm, for the chart's tests (deploy/helm), built once per version into the
# user cache beside the test environment's etcd and MinIO.
HELM_VERSION := v3.22.1
HELM := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/strata/helm-$(HELM_VERSION)/helm
helm-tools:
	@test -x $(HELM) || GOBIN=$(dir $(HELM)) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# The broker image as an OCI archive, built without a container engine:
# `podman load -i bin/strata-image.tar`, or
# `skopeo copy oci-archive:bin/strata-image.tar docker://<registry>/strata:<tag>`.
# IMAGE_ARCH picks the architecture (the binary is cross-compiled, static).
IMAGE_TAG ?= strata:dev
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/linux-$(IMAGE_ARCH)/strata ./cmd/strata
	$(GO) run ./deploy/image --binary $(BIN)/linux-$(IMAGE_ARCH)/strata --platform linux/$(IMAGE_ARCH) --tag $(IMAGE_TAG) --out $(BIN)/strata-image.tar

clean:
	rm -rf $(BIN) $(TOOLS)
