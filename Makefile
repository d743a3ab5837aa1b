# The two commands a user needs: `make run` and `make test`.
CARGO ?= cargo
LISTEN ?= 127.0.0.1:9092
DATA_DIR ?= ./data
# Test binaries run in parallel; each test starts its own broker.
TEST_THREADS ?= 4

.PHONY: run build test fmt fmt-check lint bench clean

run:
	$(CARGO) run --release --bin sluice -- serve --listen $(LISTEN) --data-dir $(DATA_DIR)

build:
	$(CARGO) build --release --workspace

# Everything CI checks: formatting, lints, then every test, built once.
test: fmt-check lint
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS); \
	else \
		$(CARGO) test --workspace --no-fail-fast -- --test-threads $(TEST_THREADS); \
	fi

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build
	./target/release/sluice-bench --spawn ./target/release/sluice --out bench/results

clean:
	$(CARGO) clean
