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

.PHONY: run build test py-deps fmt fmt-check lint bench bench-fetch bench-codecs clean

run:
	$(CARGO) run --release --bin sluice -- serve --listen $(LISTEN) --data-dir $(DATA_DIR)

build:
	$(CARGO) build --release --workspace

# Everything CI checks: formatting, lints, then every test, built once.
test: fmt-check lint py-deps
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS); \
	else \
		$(CARGO) test --workspace --no-fail-fast -- --test-threads $(TEST_THREADS); \
	fi

py-deps: $(PY_VENV)/.kafka-python-$(KAFKA_PYTHON_VERSION)

$(PY_VENV)/.kafka-python-$(KAFKA_PYTHON_VERSION):
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check kafka-python==$(KAFKA_PYTHON_VERSION)
	touch $@

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The standard 1 KB workloads against a spawned broker, and the machine's
# baselines; reports and plots land in bench/results/ (ignored by git).
bench: build
	./target/release/sluice-bench run bench/workloads/1-topic-100-partitions-1kb-50k.toml --spawn --out bench/results/1kb-50k
	./target/release/sluice-bench run bench/workloads/1-topic-100-partitions-1kb-max.toml --spawn --out bench/results/1kb-max
	./target/release/sluice-bench baseline --out bench/results

# Zero-copy vs copying fetch of a 4 GiB partition (GIB=1 for a quick run).
GIB ?= 4
bench-fetch: build
	$(CARGO) run --release --example fetch_bench -- --gib $(GIB)

# Codec compress/decompress/recompress MB/s on one core.
bench-codecs:
	$(CARGO) run --release --example codec_bench

clean:
	$(CARGO) clean
