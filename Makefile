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

.PHONY: help setup run landing more-data airflow-db airflow-up airflow-down test test-fast fuzz lint format bench bench-training bench-ingest clean integration up down mlflow-up mlflow-down mlflow-ui synth-check bench-simulate serve deploy bench-serving bench-serving-curve bench-drift drift-study learning-curve import bench-import colour-reference gate-power docs docs-serve readme openapi screenshots bench-serving-paths serving-profile

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create the locked environment (idempotent)

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.9"
	$(UV) sync --locked --python $(PYTHON_VERSION) --extra $(TF_EXTRA) --extra rail
	@touch $@

lint: setup ## ruff, mypy, the import graph (no circles, nothing imports upward: pyproject.toml's contracts), sizes
	$(BIN)/ruff check astrospect harness tests dags
	$(BIN)/ruff format --check astrospect harness tests dags
	$(BIN)/mypy
	PYTHONPATH=$(CURDIR) $(BIN)/lint-imports
	$(BIN)/python -m harness.lint.sizes astrospect

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix astrospect harness tests dags
	$(BIN)/ruff format astrospect harness tests dags

test: setup ## the whole test suite (unit, data, model, integration)
	$(BIN)/pytest --durations=12

test-faults: setup ## the fault-injection suite (make test runs it too); rewrites docs/results/faults.json and its table
	$(BIN)/pytest -m faults -p no:cacheprovider

test-fast: setup ## everything but the integration tests
	$(BIN)/pytest -m "not integration"

FUZZ_EXAMPLES ?= 200
fuzz: setup ## the data gate's property-based test with FUZZ_EXAMPLES random landing zones (make test runs 5 fixed ones)
	ASTROSPECT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/gate/test_gate_fuzz.py -p no:cacheprovider --hypothesis-show-statistics -q

# ---- the main job: the nightly DAG, for real, on the embedded default ----
# Size and training length of the demo; raise them for a better model (see README).
DEMO_N ?= 12000
DEMO_SEED ?= 1
DEMO_LRG_FRACTION ?= 0.05
# The length of every CNN's learning-rate schedule (warm-up, then cosine): README, "Training".
EPOCHS ?= 20
export ASTROSPECT_EPOCHS ?= $(EPOCHS)
# What `make run` trains: empty is the registry's default session (astrospect/models/registry.py's
# DEFAULT_SESSION), as the nightly DAG trains it: the seed CNN on the full and the clipped sets, cnn-ebv, the
# PDF CNN, the colour k-NN on each clipping, the N(z) null, the local linear fit and RAIL's DNF. Name a set to
# train less or more, e.g. RUN_CHALLENGERS=full,clipped or RUN_CHALLENGERS=pdf,rail-flexzboost.
RUN_CHALLENGERS ?=
export AIRFLOW_HOME ?= $(ASTROSPECT_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__UNIT_TEST_MODE ?= False
# Local runs have no Celery: the `gpu` queue is just a label for `airflow dags test` and the LocalExecutor.
NIGHTLY_LOG = $(ASTROSPECT_HOME)/logs/nightly-$(shell date -u +%Y%m%dT%H%M%S).log
# When this make started (set-up included): make run's wall time, written to docs/results/make-run.json.
RUN_STARTED := $(shell date +%s)
RUN_LOAD := $(shell cut -d' ' -f1 /proc/loadavg 2>/dev/null)

run: setup landing mlflow-up airflow-db ## simulate a landing zone, run the nightly DAG for real, print the tables
	@mkdir -p $(ASTROSPECT_HOME)/logs
	@echo "running astrospect_nightly with airflow dags test (full log: $(NIGHTLY_LOG))"
	@set -o pipefail; ASTROSPECT_CHALLENGERS="$(RUN_CHALLENGERS)" $(BIN)/airflow dags test astrospect_nightly --conf '{"epochs": $(EPOCHS)}' 2>&1 \
		| tee $(NIGHTLY_LOG) | grep --line-buffered -E "astrospect\.|DAG TEST\] end task|DagRun Finished|ERROR|Traceback" \
		| grep --line-buffered -v "^\s*$$"
	$(BIN)/astrospect report
	$(BIN)/python -m harness.make_run_results --started $(RUN_STARTED) $(if $(RUN_LOAD),--load-before $(RUN_LOAD),) --command "make run"

landing: setup ## seed the local landing zone with simulated shards (once; `make more-data` adds a night)
	@if ls $(ASTROSPECT_HOME)/landing/*.h5 >/dev/null 2>&1; then \
		echo "landing zone $(ASTROSPECT_HOME)/landing already holds shards"; \
	else \
		$(BIN)/astrospect synth --out $(ASTROSPECT_HOME)/landing --n $(DEMO_N) --seed $(DEMO_SEED) --lrg-fraction $(DEMO_LRG_FRACTION); \
	fi

more-data: setup ## simulate another night of shards into the landing zone (a new seed each time)
	$(BIN)/astrospect synth --out $(ASTROSPECT_HOME)/landing --n $$(( $(DEMO_N) / 4 )) --seed $$(date +%s) --lrg-fraction $(DEMO_LRG_FRACTION)

airflow-db: setup ## create or upgrade Airflow's SQLite metadata database under data/airflow
	@mkdir -p $(AIRFLOW_HOME)
	@$(BIN)/airflow db migrate >/dev/null

AIRFLOW_UI_PORT ?= 8080
AIRFLOW_PID = $(AIRFLOW_HOME)/standalone.pid

airflow-up: airflow-db ## Airflow's UI + scheduler on 127.0.0.1:$(AIRFLOW_UI_PORT) (LocalExecutor, SQLite) to watch the DAG
	@if [ -f $(AIRFLOW_PID) ] && kill -0 $$(cat $(AIRFLOW_PID)) 2>/dev/null; then \
		echo "Airflow already running: http://127.0.0.1:$(AIRFLOW_UI_PORT)"; \
	else \
		AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_UI_PORT) \
		AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True \
		PATH=$(CURDIR)/$(BIN):$$PATH setsid nohup $(BIN)/airflow standalone > $(AIRFLOW_HOME)/standalone.log 2>&1 & echo $$! > $(AIRFLOW_PID); \
		for i in $$(seq 90); do curl -sf http://127.0.0.1:$(AIRFLOW_UI_PORT)/api/v2/monitor/health >/dev/null && break; sleep 1; done; \
		curl -sf http://127.0.0.1:$(AIRFLOW_UI_PORT)/api/v2/monitor/health >/dev/null \
			|| { echo "Airflow did not become healthy; see $(AIRFLOW_HOME)/standalone.log" >&2; exit 1; }; \
		echo "Airflow UI: http://127.0.0.1:$(AIRFLOW_UI_PORT) (loopback only, no login; unpause astrospect_nightly to schedule it)"; \
	fi

airflow-down: ## stop what airflow-up started (its whole process group)
	@if [ -f $(AIRFLOW_PID) ] && kill -0 $$(cat $(AIRFLOW_PID)) 2>/dev/null; then \
		group=$$(cat $(AIRFLOW_PID)); kill -- -$$group; \
		for i in $$(seq 30); do kill -0 -- -$$group 2>/dev/null || break; sleep 1; done; \
		rm -f $(AIRFLOW_PID); echo "Airflow stopped"; \
	else echo "Airflow is not running"; rm -f $(AIRFLOW_PID); fi

clean: ## remove generated data (keeps the environment)
	rm -rf data test-artifacts

bench: bench-training bench-ingest bench-simulate bench-serving bench-drift bench-import ## every benchmark, each printing ratios against a baseline measured in the same run

bench-training: setup ## training input pipeline: fit from shards vs in-memory tensors
	$(BIN)/python -m harness.bench.training

bench-ingest: setup ## data gate: ingest MB/s from loopback S3 vs plain boto3, validation cutouts/s
	$(BIN)/python -m harness.bench.ingest

bench-simulate: setup ## simulator: render CPU ms/galaxy vs GalSim defaults, galaxies/s on 1 and 2 workers
	$(BIN)/python -m harness.bench.simulate

bench-serving: setup ## serving: warm req/s per route vs an empty BentoML endpoint in the same run (wrk -t2 -c16); docs/results/bench-serving.json
	@command -v wrk >/dev/null 2>&1 || { echo "bench-serving needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(BIN)/python -m harness.bench.serving_floor

bench-serving-paths: setup ## serving: req/s, p50/p99 of 16 clients on `bentoml serve` vs naive model.predict and batched ceiling; PDF vs point cost
	$(BIN)/python -m harness.bench.serving

serving-profile: setup ## serving: py-spy on both workers under wrk load, CPU per request by category (PROFILE_LABEL=before|after)
	$(BIN)/python -m harness.bench.serving_profile --label $(PROFILE_LABEL)

PROFILE_LABEL ?= after
CURVE_LAYOUTS ?= 2x1x1,1x1x1,1x2x1
bench-serving-curve: setup ## serving: p99 and req/s against 1-32 clients for worker x intra-op x inter-op layouts (CURVE_LAYOUTS), side by side
	$(BIN)/python -m harness.bench.serving_curve --layouts $(CURVE_LAYOUTS)

LEARNING_CURVE_DATA ?= $(ASTROSPECT_HOME)/learning-curve/shards
LEARNING_CURVE_OUT ?= $(ASTROSPECT_HOME)/learning-curve/study
LEARNING_CURVE_SIZES ?= 12000,48000,100000
# The CNNs and the codes the table sets against each other: the PDF CNN, the colour k-NN, the local linear fit
# and RAIL's DNF (add --challenger rail-flexzboost etc. by hand: each point lands in the same study folder).
LEARNING_CURVE_CHALLENGERS ?= --challenger pdf --challenger baseline-knn-full --challenger baseline-local-linear --challenger rail-dnf
learning-curve: setup mlflow-up ## sigma_MAD of the PDF CNN and the field's codes at 12k-100k training galaxies, one holdout; resumable; logged to MLflow (hours on a CPU)
	@if ! ls $(LEARNING_CURVE_DATA)/*.h5 >/dev/null 2>&1; then \
		$(BIN)/astrospect synth --out $(LEARNING_CURVE_DATA) --n 126000 --seed 7 --lrg-fraction $(DEMO_LRG_FRACTION); fi
	$(BIN)/astrospect learning-curve --data $(LEARNING_CURVE_DATA) --sizes $(LEARNING_CURVE_SIZES) --epochs $(EPOCHS) \
		$(LEARNING_CURVE_CHALLENGERS) --record --out $(LEARNING_CURVE_OUT)

BENCH_IMPORT_N ?= 50000
bench-import: setup ## importer: a BENCH_IMPORT_N-galaxy Pasquet .npz under prlimit --as=4G, rate and peak RSS vs np.load(mmap) -> HDF5
	$(BIN)/python -m harness.bench.importers --n $(BENCH_IMPORT_N)

bench-drift: setup ## drift step on a make-run-sized night (12k reference, 3k tonight): cold and cached, vs a training epoch
	$(BIN)/python -m harness.bench.drift

drift-study: setup ## drift detection power and false alarms over simulated nights (long: renders ~65k galaxies once, kept in data/drift-study)
	$(BIN)/python -m harness.drift_study

# ---- bring your own cutouts (issue 20; README "Bring your own SDSS cutouts") ----
# make import LAYOUT=npz FILE=cube.npz [IMPORT_ARGS="--specz z --shard-size 1000"]; LAYOUT=fits takes a folder
# and IMPORT_ARGS="--catalogue cat.csv". The shards land in ASTROSPECT_LANDING (or data/landing).
LAYOUT ?= npz
import: setup ## import cutouts you have into the landing zone: make import LAYOUT=npz|hdf5|fits FILE=... [IMPORT_ARGS=...]
	@test -n "$(FILE)" || { echo "usage: make import LAYOUT=npz|hdf5|fits FILE=path [IMPORT_ARGS='...']" >&2; exit 2; }
	$(BIN)/astrospect import $(LAYOUT) --data "$(FILE)" $(IMPORT_ARGS)

colour-reference: setup ## derive expectations/colour_reference.json (the gate's colour calibration) from 18k clean simulated galaxies (kept in data/gate-study)
	$(BIN)/python -m harness.colour_reference

gate-power: setup ## the gate's quarantine rate for 0.05/0.1/0.2 mag zero-point errors per band, false quarantines on clean shards and on make run's night
	$(BIN)/python -m harness.gate_power

deploy: setup ## import the MLflow registry's champion into BentoML's store and build its bento
	$(BIN)/astrospect deploy

serve: setup ## serve the newest deployed bento with `bentoml serve` on 127.0.0.1:3000 (restart to pick up a new champion)
	$(BIN)/astrospect serve

# ---- scaled-out topology (README "Production deployment") ----
# Compose v2 (`docker compose`) when the docker client has it, else the standalone `docker-compose`.
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo "docker-compose")
COMPOSE_RUN := $(COMPOSE) --project-name astrospect --file docker/compose.yaml --env-file .env

integration: setup ## the scaled-out topology natively on loopback (Postgres, Redis, S3, MLflow, Airflow on Celery, BentoML): nightly run + GPU-worker fault test
	$(BIN)/pytest tests/test_topology.py -s -v -p no:cacheprovider

up: ## docker/compose.yaml: build the images and start every service (needs .env, see .env.example)
	@test -f .env || { echo "no .env: cp .env.example .env and fill in every secret" >&2; exit 2; }
	GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown) $(COMPOSE_RUN) up --detach --build $(if $(findstring docker compose,$(COMPOSE)),--wait,)
	$(COMPOSE_RUN) ps

down: ## stop and remove the compose services (named volumes are kept; add V=1 to delete them too)
	$(COMPOSE_RUN) down --remove-orphans $(if $(V),--volumes,)

# ---- the docs' screenshots (docs/images/*.png) from a small real night of their own ----
# Its own ASTROSPECT_HOME, MLflow server (a free port, kept in SCREENSHOTS_HOME/mlflow.port) and Airflow
# database: make run's data/ is never touched. The night is kept and reused; FRESH=1 makes it again.
SCREENSHOTS_HOME ?= $(CURDIR)/data/screenshots
screenshots: setup ## the docs' five screenshots into docs/images, from two small real nights in data/screenshots (FRESH=1: make them again)
	$(BIN)/python -m harness.screenshots --home $(SCREENSHOTS_HOME) --out docs/images $(if $(FRESH),--fresh,)

# ---- MLflow tracking server (embedded default: SQLite + artifacts under $(ASTROSPECT_HOME)/mlflow) ----
export MLFLOW_PORT ?= 5000
export MLFLOW_TRACKING_URI ?= http://127.0.0.1:$(MLFLOW_PORT)

mlflow-up: setup ## start the local MLflow server in the background if it is not running (pid + log in data/mlflow)
	@mlflow/server.sh up

mlflow-down: ## stop the local MLflow server started by mlflow-up
	@mlflow/server.sh down

mlflow-ui: mlflow-up ## print the MLflow UI's URLs: the runs table and the latest session's compare view
	@$(BIN)/python -c "from astrospect.settings import load_settings; from astrospect.tracking import sessions as t; \
	s = load_settings(); print('runs table:   ', t.experiment_url(s)); p = t.latest_session(s); \
	print('compare view: ', t.compare_url(p.run_id, s) if p else '(no session yet: make run)')"

# ---- simulator calibration check (issue 3, part 3) ----
SYNTH_CHECK_N ?= 20000
SYNTH_CHECK_SEED ?= 4242

synth-check: setup ## simulate SYNTH_CHECK_N galaxies (no LRG tail) into a temp folder and compare them with real SDSS
	@folder=$$(mktemp -d -t astrospect-synth-check-XXXXXX) && trap 'rm -rf "$$folder"' EXIT && \
		$(BIN)/astrospect synth --out "$$folder" --n $(SYNTH_CHECK_N) --seed $(SYNTH_CHECK_SEED) --shard-size 5000 && \
		$(BIN)/astrospect synth-check --data "$$folder" --record \
			--record-as "make synth-check SYNTH_CHECK_N=$(SYNTH_CHECK_N) SYNTH_CHECK_SEED=$(SYNTH_CHECK_SEED)"

# ---- the docs site (MkDocs + Material; docs/explanation/tools.md says why) ----
DOCS_PORT ?= 8000

docs: setup ## build the docs site strictly into site/ (CLI, settings, HTTP API and figures generated at build time)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --clean

docs-serve: setup ## serve the docs site on 127.0.0.1:$(DOCS_PORT), rebuilding on every edit
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

readme: setup ## rewrite the README's generated figures from docs/results/*.json
	$(BIN)/python -m harness.docs.readme

openapi: setup ## rewrite docs/reference/openapi.json from the BentoML service (no model needed)
	$(BIN)/python -m harness.docs.openapi
