# zapfn — the commands a newcomer needs. `make run`, `make test`.
# The cargo target dir lives outside the clone so CI and fresh clones reuse builds.
CARGO_TARGET_DIR ?= $(HOME)/.cache/zapfn-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: run test lint unit bench build release fmt clean-state help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## run every function in one process on 127.0.0.1:8080 (sandbox unless WA_ACCESS_TOKEN is set)
	$(CARGO) run --release -p zapfn -- dev

test: lint unit ## formatting, clippy and every test suite

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ## all tests (unit, loopback integration, crash recovery)
	$(CARGO) test --workspace

bench: ## throughput/latency/startup figures next to a bare axum hello-world
	bash bench/run.sh

build: ## debug build of every crate
	$(CARGO) build --workspace

release: ## release binaries (one per function plus `zapfn`)
	$(CARGO) build --release --workspace

fmt: ## format the code
	$(CARGO) fmt --all

clean-state: ## delete the embedded state in ./.zapfn
	rm -rf .zapfn
