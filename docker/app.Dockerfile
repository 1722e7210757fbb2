# syntax=docker/dockerfile:1.7
# The AstroSpect application image: every Airflow 3 component (api-server, scheduler, dag-processor,
# triggerer, the CPU Celery worker), the MLflow tracking server and the project itself.
#
# Python packages come from uv.lock and nothing else (`uv sync --locked`, CPU TensorFlow extra): the image
# runs exactly the environment a developer's `make setup` builds. tests/test_docker_static.py checks it.
#
# Bases are pinned by tag. Before a release, pin digests too, e.g.
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm --format '{{json .Manifest.Digest}}'
# and write FROM python:3.11.13-slim-bookworm@sha256:... (no registry is reachable where this was written).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11.13-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/astrospect/.venv
WORKDIR /opt/astrospect
# Dependencies first (a layer that changes only with the lock), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --extra cpu --extra rail
COPY astrospect ./astrospect
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra cpu --extra rail

FROM python:3.11.13-slim-bookworm
# libgomp1: OpenMP for scikit-learn and TensorFlow; curl: none (health checks use Python).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --gid 0 --create-home --home-dir /home/astrospect astrospect \
    && mkdir -p /opt/airflow /data \
    && chown astrospect:0 /opt/airflow /data
COPY --from=build --chown=astrospect:0 /opt/astrospect /opt/astrospect
COPY --chown=astrospect:0 dags /opt/astrospect/dags
COPY --chown=astrospect:0 expectations /opt/astrospect/expectations
COPY --chown=astrospect:0 mlflow /opt/astrospect/mlflow
COPY --chown=astrospect:0 bentofile.yaml /opt/astrospect/bentofile.yaml
# The commit MLflow records for each run (an image has no .git): make up passes `git rev-parse HEAD`.
ARG GIT_COMMIT=unknown
ENV PATH=/opt/astrospect/.venv/bin:$PATH \
    ASTROSPECT_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/astrospect/dags \
    ASTROSPECT_HOME=/data \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/astrospect
USER 50000:0
EXPOSE 8080 5000
CMD ["airflow", "version"]
