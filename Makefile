# ec2-reaper — the verbs a user types. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Dependencies (the AWS SDK above all: minutes and GBs) are compiled once per machine into a
# shared cargo build-dir; every checkout keeps its own target dir, so the binaries a checkout tests,
# demos and zips are the ones built from its own sources. .cargo/config.toml gives each checkout a
# distinct REAPER_CHECKOUT, which the workspace crates read (env!), so cargo rebuilds them (and
# only them) when another checkout used the shared build-dir last.
export CARGO_BUILD_BUILD_DIR ?= $(HOME)/.cache/ec2-reaper/build
export CARGO_TARGET_DIR ?= $(CURDIR)/target
# Python tools (moto, cfn-lint, awscli, cargo-lambda, zig) live in a venv keyed by the lock file's
# hash (the stamp's name; the lock is order-only, so a fresh clone's newer mtime rebuilds nothing).
VENV ?= $(HOME)/.cache/ec2-reaper/venv
PYTHON ?= python3
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
VENV_STAMP := $(VENV)/.installed-$(LOCK_HASH)
# checkov and parliament conflict with moto's pins: they get a venv of their own, keyed the same way.
LINT_VENV ?= $(VENV)-lint
LINT_LOCK_HASH := $(shell sha256sum requirements-lint.lock | cut -c1-16)
LINT_VENV_STAMP := $(LINT_VENV)/.installed-$(LINT_LOCK_HASH)
export REAPER_LINT_VENV := $(LINT_VENV)
# cargo-lambda finds zig only when the venv's bin comes first on PATH.
export PATH := $(VENV)/bin:$(PATH)
export REAPER_VENV := $(VENV)
export MOTO_SERVER ?= $(VENV)/bin/moto_server

ZIP := $(CARGO_TARGET_DIR)/lambda/reaper/bootstrap.zip
ACTIONS_ZIP := $(CARGO_TARGET_DIR)/lambda/reaper-actions/bootstrap.zip
# Cloud Custodian for `make bench` only, in its own venv keyed by its hash-pinned requirements.
BENCH_VENV ?= $(HOME)/.cache/ec2-reaper/venv-bench
BENCH_HASH := $(shell sha256sum bench/requirements.txt | cut -c1-16)
BENCH_STAMP := $(BENCH_VENV)/.installed-$(BENCH_HASH)

.PHONY: help venv lint-venv fmt fmt-check clippy cfn-lint checkov parliament iam-table lint test test-rust test-deploy build smoke-arm64 ci demo bench evidence-bench actions-bench fuzz \
        publish deploy deploy-evidence deploy-actions golive invoke rehearse lock clean

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

venv: $(VENV_STAMP) ## install the pinned Python tools into the project venv (no-op when present)
$(VENV_STAMP): | requirements.lock
	@echo "==> installing tools into $(VENV)"
	rm -rf "$(VENV)"
	$(PYTHON) -m venv "$(VENV)"
	"$(VENV)/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch "$@"

lint-venv: $(LINT_VENV_STAMP) ## install checkov and parliament (hash-checked) into their own venv
$(LINT_VENV_STAMP): | requirements-lint.lock
	@echo "==> installing lint tools into $(LINT_VENV)"
	rm -rf "$(LINT_VENV)"
	$(PYTHON) -m venv "$(LINT_VENV)"
	"$(LINT_VENV)/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r requirements-lint.lock
	touch "$@"

# pip-tools itself comes unhashed from PyPI (it only writes the lock; nothing it installs is used).
# The current lock is its starting point, so only what requirements*.txt changed moves.
lock: ## re-pin requirements.lock and requirements-lint.lock (with hashes) from the .txt files
	rm -rf /tmp/ec2-reaper-lock && $(PYTHON) -m venv /tmp/ec2-reaper-lock
	/tmp/ec2-reaper-lock/bin/pip install --quiet pip-tools==7.6.2
	for r in requirements requirements-lint; do \
	  cp $$r.lock $$r.lock.new; \
	  /tmp/ec2-reaper-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-header \
	    --no-emit-find-links -o $$r.lock.new $$r.txt; \
	  { echo "# Generated from $$r.txt by pip-compile --generate-hashes (python 3.11); installed with"; \
	    echo "# pip --require-hashes, so a changed or substituted file fails the install. Regenerate: make lock"; \
	    echo; cat $$r.lock.new; } > $$r.lock; rm -f $$r.lock.new; \
	done

fmt: ## format the Rust code
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

cfn-lint: venv ## lint both CloudFormation templates (zero errors, zero warnings)
	scripts/lint-templates

checkov: lint-venv ## checkov over cloudformation/ (zero failed checks; skips only inline, with reasons)
	scripts/lint-checkov

parliament: lint-venv ## parliament over every IAM policy the templates render (findings justified in cloudformation/parliament.yaml)
	scripts/lint-iam

# The IAM evaluator is a test-only npm package (never in the zip), installed from its lock into
# tests/iam/node_modules, keyed by the lock's hash like the venvs.
IAM_LOCK_HASH := $(shell sha256sum tests/iam/package-lock.json | cut -c1-16)
IAM_STAMP := tests/iam/node_modules/.installed-$(IAM_LOCK_HASH)
$(IAM_STAMP): | tests/iam/package-lock.json
	cd tests/iam && npm ci --ignore-scripts --no-audit --no-fund
	touch "$@"

iam-table: venv $(IAM_STAMP) ## the role's policy, every switch combination, through a real IAM evaluator against the decision table (docs/IAM.md)
	REAPER_PYTHON="$(VENV)/bin/python" node --test tests/iam/

lint: fmt-check clippy cfn-lint checkov parliament iam-table ## fmt --check, clippy -D warnings, cfn-lint, checkov, parliament, the IAM decision table

test: venv test-rust test-deploy ## unit, adapter, end-to-end (moto) and deployment tests

# cargo's progress stays visible: the first build on a machine compiles the AWS SDK for minutes.
BUILD_NOTE := first build on a machine: 5-10 minutes; later builds are incremental

test-rust: venv
	@echo "==> building the reaper, reaperctl and the test harness ($(BUILD_NOTE))"
	cargo build --locked --workspace --bins
	cargo test --workspace --locked --no-run
	@echo "==> running the Rust tests (unit, property, adapter, end-to-end against moto)"
	cargo test --workspace --locked

# The deployment tests use the real arm64 zips when they have been built (make ci builds them first).
test-deploy: venv
	if [ -s "$(ZIP)" ]; then export REAPER_ZIP="$(ZIP)"; fi; \
	if [ -s "$(ACTIONS_ZIP)" ]; then export REAPER_ACTIONS_ZIP="$(ACTIONS_ZIP)"; fi; \
	"$(VENV)/bin/pytest" -q tests/deploy

# Property tests are named fuzz_*; `make test` runs them at proptest's default count (256).
FUZZ_CASES ?= 1000000
fuzz: ## long property tests (tag grammar, events, configuration): FUZZ_CASES=1000000 each, optimised; minutes
	cargo test --profile fuzz --locked -p reaper --lib --no-run
	for t in $$(cargo test --profile fuzz --locked -p reaper --lib -q fuzz_ -- --list 2>/dev/null | sed -n 's/: test$$//p'); do \
	  start=$$(date +%s.%N); \
	  out=$$(PROPTEST_CASES=$(FUZZ_CASES) cargo test --profile fuzz --locked -p reaper --lib -q "$$t" -- --exact 2>&1) \
	    || { echo "$$out"; echo "FAILED: $$t"; exit 1; }; \
	  awk -v t="$$t" -v n="$(FUZZ_CASES)" -v s="$$start" -v e="$$(date +%s.%N)" \
	    'BEGIN { printf "%-72s %9d cases %8.1f s\n", t, n, e - s }'; \
	done

build: venv ## build the arm64 Lambda zip with cargo-lambda; prints path, size, sha256
	scripts/build

demo: venv ## the whole job against a local AWS emulator: seed, dry run, live run, report
	@echo "==> building the reaper, reaperctl and the demo harness ($(BUILD_NOTE))"
	cargo build --locked --workspace --bins
	@echo "==> running the demo (about 70 s: it waits a minute for part of its fleet to outlive the grace period)"
	cargo run --quiet --locked -p reaper-e2e --bin demo

$(BENCH_STAMP): | bench/requirements.txt
	@echo "==> installing Cloud Custodian into $(BENCH_VENV)"
	rm -rf "$(BENCH_VENV)"
	$(PYTHON) -m venv "$(BENCH_VENV)"
	"$(BENCH_VENV)/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r bench/requirements.txt
	touch "$@"

bench: venv $(BENCH_STAMP) ## ec2-reaper vs Cloud Custodian vs the bare listing: calls, wall, CPU, RSS, outcomes; plots in out/bench/
	cargo build --quiet --release --locked -p reaper --bins
	cargo build --quiet --release --locked -p reaper-e2e --bin bench
	mkdir -p out/bench
	CUSTODIAN="$(BENCH_VENV)/bin/custodian" "$(CARGO_TARGET_DIR)/release/bench" | tee out/bench/bench.md

EVIDENCE_DIR ?= out/evidence

evidence-bench: venv ## reaperctl report --html over scripts/gen-evidence's 10 000 records files: < 30 s, totals equal to its sums.json; the page's screenshot checked for its charts
	cargo build --quiet --release --locked -p reaper --bin reaperctl
	cargo build --quiet --release --locked -p reaper-e2e --bin evidence-bench
	rm -rf "$(EVIDENCE_DIR)" && mkdir -p "$(EVIDENCE_DIR)"
	scripts/gen-evidence "$(EVIDENCE_DIR)"
	"$(CARGO_TARGET_DIR)/release/evidence-bench" "$(CARGO_TARGET_DIR)/release/reaperctl" "$(EVIDENCE_DIR)"
	@# The named queries of cloudformation/deploy_evidence.yaml over the same files, in DuckDB.
	EVIDENCE_STORE="$(abspath $(EVIDENCE_DIR))" "$(VENV)/bin/pytest" -q -p no:cacheprovider tests/deploy/test_evidence_queries.py
	@# The page as a person sees it (docs/img/report.png is one): Debian's chromium, headless.
	@if command -v chromium >/dev/null; then \
	  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1700 \
	    --screenshot="$(abspath $(EVIDENCE_DIR))/report.png" "file://$(abspath $(EVIDENCE_DIR))/report.html" 2>/dev/null \
	  && echo "screenshot: $(EVIDENCE_DIR)/report.png" \
	  && "$(VENV)/bin/python" scripts/lib/check_screenshot.py "$(EVIDENCE_DIR)/report.png"; \
	else echo "no chromium for the screenshot (apt-get install chromium)"; fi

actions-bench: venv ## 100 owner clicks through the real reaper-actions binary against moto: p50/p99 answer time against Slack's 3 s, AWS calls per click
	cargo build --quiet --locked --workspace --bins
	"$(CARGO_TARGET_DIR)/debug/actions-bench"

smoke-arm64: ## run the Lambda e2e tests against the arm64 bootstrap in the zip, under qemu
	scripts/smoke-arm64

ci: lint build test smoke-arm64 demo rehearse ## what .ci/run runs: lint, arm64 build, all tests, arm64 smoke, the demo, the deploy rehearsal

publish: venv ## upload the zip (scripts/publish --help)
	scripts/publish $(ARGS)

deploy: venv ## create or update both StackSets (scripts/deploy --help)
	scripts/deploy $(ARGS)

deploy-evidence: venv ## create or update the evidence store, one central stack (scripts/deploy-evidence --help)
	scripts/deploy-evidence $(ARGS)

deploy-actions: venv ## create or update the owner-actions function, one central stack (scripts/deploy-actions --help)
	scripts/deploy-actions $(ARGS)

golive: venv ## switch LIVEMODE on across the reaper StackSet (scripts/golive --help)
	scripts/golive $(ARGS)

invoke: venv ## invoke the deployed function and print the report (scripts/invoke --help)
	scripts/invoke $(ARGS)

rehearse: venv build ## publish, both StackSets, golive and a run of the zip against a local emulator (scripts/rehearse --help)
	scripts/rehearse --zip "$(ZIP)"

clean: ## remove build outputs (keeps the venv)
	cargo clean
