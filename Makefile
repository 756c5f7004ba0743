# CodeBuild Autopilot: one verb per task. `make test` is what CI runs (via .ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
VENV_LINT := $(ROOT)/.venv-lint
CARGO ?= cargo

# The tests find moto's server and botocore's CodeBuild model (the reference for the emulator's
# shapes) through these; both live in .venv, created by `make venv`.
export MOTO_SERVER_BIN := $(VENV)/bin/moto_server
export CODEBUILD_SERVICE_MODEL := $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/botocore/data/codebuild/2016-10-06/service-2.json.gz) $(VENV)/lib/python3/site-packages/botocore/data/codebuild/2016-10-06/service-2.json.gz)
# SAM CLI phones home by default; never from CI or a developer's test run.
export SAM_CLI_TELEMETRY := 0
# Incremental state is ~3 GB for this workspace and buys nothing on a fresh clone (CI, a
# newcomer's first `make test`); it once filled a CI disk. Plain `cargo` keeps it for the edit
# loop; `CARGO_INCREMENTAL=1 make test` opts back in.
export CARGO_INCREMENTAL ?= 0

.PHONY: help venv test fmt-check clippy build cargo-test lint-template event-pattern demo bench package clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: ## create/refresh .venv (moto, botocore) and .venv-lint (sam, cfn-lint); fast when done
	scripts/python-env.sh

test: venv ## everything CI checks: format, lints, build, all tests, template lint
	$(MAKE) --no-print-directory fmt-check clippy build cargo-test lint-template event-pattern

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Before the tests: the e2e tests run the other members' binaries from target/debug.
build:
	$(CARGO) build --workspace --bins

# CODEBUILD_SERVICE_MODEL is only known after the venv exists (the wildcard above is evaluated
# when make starts), hence the recursive make in `test`.
cargo-test:
	@test -x "$(MOTO_SERVER_BIN)" || { echo "moto_server missing: run 'make venv'" >&2; exit 1; }
	@test -f "$(CODEBUILD_SERVICE_MODEL)" || { echo "botocore CodeBuild model missing: run 'make venv'" >&2; exit 1; }
	$(CARGO) test --workspace

lint-template: ## cfn-lint (with the serverless rules) and sam validate --lint on template.yaml
	@test -x "$(VENV_LINT)/bin/cfn-lint" || scripts/python-env.sh lint
	$(VENV_LINT)/bin/cfn-lint -t template.yaml -a cfn_lint_serverless.rules
	$(VENV_LINT)/bin/sam validate --lint --region us-east-1 -t template.yaml
# Without --lint, sam validate runs the SAM transform itself (this cfn-lint does not), which is
# what rejects a bad SAM property. It runs offline; SAM CLI only insists on some credentials.
	AWS_ACCESS_KEY_ID=unused AWS_SECRET_ACCESS_KEY=unused $(VENV_LINT)/bin/sam validate --region us-east-1 -t template.yaml

# moto's TestEventPattern matches anything; the test puts the pattern on a rule with an SQS
# target instead (see tests/event_pattern/test_event_pattern.py).
event-pattern: ## template checks: the auto-retry rule's pattern through moto's EventBridge, the reaper's resources
	@test -x "$(MOTO_SERVER_BIN)" || { echo "moto_server missing: run 'make venv'" >&2; exit 1; }
	$(VENV)/bin/python -m unittest discover -s tests/event_pattern -v

demo: ## run the local demo (codebuild-local + the functions)
	scripts/python-env.sh stack
	$(CARGO) build --workspace --bins
	scripts/demo.sh

bench: ## optional: ops-api, auto-retry, webhook, batch-trigger latency and memory, batch-reaper at 10,000 batches (release builds) against codebuild-local + moto
	scripts/python-env.sh stack
	$(CARGO) build --workspace --bins
	$(CARGO) build --release -p ops-api -p auto-retry -p batch-reaper -p webhook -p batch-starter -p batch-trigger -p codebuild-local
	bench/ops-api-latency.sh release 200
	bench/auto-retry-latency.sh release 100
	bench/webhook-latency.sh release 200
	bench/trigger-ops-latency.sh release 200
	bench/reaper-scale.sh release 10000 50

# Optional: Lambda zip artefacts for arm64. Needs cargo-lambda and zig (both installed into
# .venv-package from PyPI on first use); never part of `test`.
VENV_PACKAGE := $(ROOT)/.venv-package
package: ## build release arm64 Lambda artefacts with cargo-lambda (target/lambda/<name>/)
	@test -x "$(VENV_PACKAGE)/bin/cargo-lambda" || { python3 -m venv "$(VENV_PACKAGE)" && "$(VENV_PACKAGE)/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.0; }
	PATH="$(VENV_PACKAGE)/bin:$$PATH" cargo-lambda lambda build --release --arm64

clean: ## remove build output and the Python environments
	$(CARGO) clean
	rm -rf "$(VENV)" "$(VENV_LINT)" "$(VENV_PACKAGE)"
