# AstroSpect. `make run` is the main job and `make test` the test suite; both set everything up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON_VERSION := 3.11
# uv is installed with pip if missing, and always called as a module so PATH does not matter.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
BIN := $(VENV)/bin
# One code path; only the TensorFlow wheel differs where a GPU answers.
TF_EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export ASTROSPECT_HOME ?= $(CURDIR)/data

.PHONY: help setup run test test-fast lint format bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create the locked environment (idempotent)

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.9"
	$(UV) sync --locked --python $(PYTHON_VERSION) --extra $(TF_EXTRA)
	@touch $@

lint: setup ## ruff and mypy
	$(BIN)/ruff check astrospect tests dags
	$(BIN)/ruff format --check astrospect tests dags
	$(BIN)/mypy

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix astrospect tests dags
	$(BIN)/ruff format astrospect tests dags

test: setup ## the whole test suite (unit, data, model, integration)
	$(BIN)/pytest

test-fast: setup ## everything but the integration tests
	$(BIN)/pytest -m "not integration"

clean: ## remove generated data (keeps the environment)
	rm -rf data test-artifacts

bench-training: setup ## training input pipeline: fit from shards vs in-memory tensors
	$(BIN)/python -m astrospect.bench.training
