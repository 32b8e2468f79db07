# shelfcast: thin wrappers around cargo and the set-up scripts. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

CARGO ?= cargo
# libtorch's OpenMP threads busy-wait by default and starve DataFusion's workers.
export OMP_WAIT_POLICY ?= PASSIVE
# Size of the demo lake `make run` generates when the lake is empty.
DEMO_SERIES ?= 200
DEMO_DAYS ?= 1095
BIN := target/release/shelfcast
# Cargo features of `make test` and `make check`: `ballista` adds the Ballista engine and its tests
# (a long first build), `faults` the fault-injecting store and the fault tests. One feature set for
# every test command, so the tests build once.
TEST_FEATURES ?= ballista,faults
FEATURES_FLAG := $(if $(TEST_FEATURES),--features $(TEST_FEATURES))

.PHONY: help libtorch build run test test-s3 check fmt clean-lake

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

libtorch: ## Fetch libtorch 2.13 into ./libtorch (skipped when LIBTORCH or LIBTORCH_USE_PYTORCH is set)
	@if [[ -n "$${LIBTORCH:-}" || -n "$${LIBTORCH_USE_PYTORCH:-}" ]]; then \
		echo "using your libtorch ($${LIBTORCH:-python torch})"; \
	else \
		scripts/libtorch.sh libtorch; \
	fi

build: libtorch ## Release build of the shelfcast binary
	$(CARGO) build --release --locked

run: build ## Set everything up, make a demo lake if ./lake is empty, run the nightly job once
	$(BIN) demo --if-empty --series $(DEMO_SERIES) --days $(DEMO_DAYS)
	$(BIN) run nightly

test: libtorch ## Run every test (Ballista's too: TEST_FEATURES=ballista), then the S3 tests against moto on loopback
	$(CARGO) test --locked $(FEATURES_FLAG) --no-fail-fast
	CARGO="$(CARGO)" scripts/s3_test.sh $(FEATURES_FLAG)

test-s3: libtorch ## Only the S3 tests, against moto on loopback
	CARGO="$(CARGO)" scripts/s3_test.sh $(FEATURES_FLAG)

check: libtorch ## Formatting, lints and the module layering (no import cycle between top-level modules)
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets $(FEATURES_FLAG) -- -D warnings
	python3 scripts/module_cycles.py

fmt: ## Format the code
	$(CARGO) fmt

clean-lake: ## Delete the local demo lake (./lake)
	rm -rf lake

.PHONY: bench bench-sql

bench: bench-sql bench-train ## Run every benchmark (results in benches/results/)

bench-sql: libtorch ## SQL feature benchmark: shelfcast vs DuckDB on 1M and 10M rows
	scripts/bench_sql.sh $(BENCH_SQL_ARGS)

.PHONY: bench-train
bench-train: build ## Deep-model training benchmark on the demo lake (epoch time, samples/s, data-prep share, inference)
	python3 benches/bench_train.py $(BENCH_TRAIN_ARGS)

.PHONY: bench-walmart
bench-walmart: build ## Real-data benchmark: Walmart weekly sales, shelfcast's models next to the peers (BENCH_WALMART_ARGS=--no-peers to reuse theirs)
	python3 benches/bench_walmart.py $(BENCH_WALMART_ARGS)

.PHONY: bench-local
bench-local: build ## The demo's local layer before/after: gbt and seasonal naive with and without closures, local calendars and the planned covariate (BENCH_LOCAL_ARGS=--series 100 …)
	python3 benches/bench_local.py $(BENCH_LOCAL_ARGS)

.PHONY: bench-demo
bench-demo: build ## The models on the demo lake: MASE, WAPE, 80% coverage and seconds per model, scored by score.py (BENCH_DEMO_ARGS=--models … --series …)
	python3 benches/bench_demo.py $(BENCH_DEMO_ARGS)

.PHONY: bench-serve
bench-serve: build ## `shelfcast serve`: a 10M-row result streamed to psycopg and to ADBC (Flight SQL), rows/s next to DuckDB reading the same Parquet (BENCH_SERVE_ARGS=--rows …)
	python3 benches/bench_serve.py $(BENCH_SERVE_ARGS)

.PHONY: bench-nights
bench-nights: build ## The demo's first (cold) and next (warm) nightly with the default models, 200 series x 1,095 days: seconds and peak RSS per step (BENCH_NIGHTS_ARGS=--nights 3 …)
	python3 benches/bench_scale.py --series 200 --days 1095 --nights 2 --memory-limit-mb 2048 --nice 0 \
		--models seasonal_naive,ets,theta,tsb,gbt,lstm,transformer,ensemble $(BENCH_NIGHTS_ARGS)

.PHONY: bench-warm
bench-warm: build ## The accuracy cost of warm starts: 7 nights of the deep models on the demo (200 x 1,095), fine-tuned night after night against trained from scratch, scored by score.py (BENCH_WARM_ARGS=--nights 3 …)
	python3 benches/bench_warm.py $(BENCH_WARM_ARGS)

.PHONY: bench-scale
bench-scale: build ## Memory at scale: the nightly job on a 30,000 series × 1,900 days demo lake under memory-limit-mb (time and peak RSS per step; BENCH_SCALE_ARGS=--series 5000 …)
	python3 benches/bench_scale.py $(BENCH_SCALE_ARGS)
