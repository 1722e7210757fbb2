# syntax=docker/dockerfile:1.7
# The serving image: the bento's service (bentofile.yaml: astrospect.serving.service:PhotoZ) in the locked
# environment, run by `bentoml serve`.
#
# The bento is built from bentofile.yaml plus the registry's champion. The champion changes every night
# while the image should not, so the container builds the bento at start: `astrospect deploy` imports
# models:/<name>@champion from MLflow (Postgres + S3) into the container's BentoML store and builds the
# bento, then `astrospect serve` serves it; /readyz answers only once the model is loaded. Restarting the
# container after a promotion serves the new champion. For an immutable image per champion, run
# `bentoml containerize astrospect-photoz:<tag>` on a bento that `astrospect deploy` built.
#
# Bases are pinned by tag; pin digests before a release (see app.Dockerfile).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11.13-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/astrospect/.venv
WORKDIR /opt/astrospect
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --extra cpu
COPY astrospect ./astrospect
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra cpu

FROM python:3.11.13-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --gid 0 --create-home --home-dir /home/astrospect astrospect \
    && mkdir -p /data \
    && chown astrospect:0 /data
COPY --from=build --chown=astrospect:0 /opt/astrospect /opt/astrospect
COPY --chown=astrospect:0 bentofile.yaml /opt/astrospect/bentofile.yaml
COPY --chown=astrospect:0 docker/serving-entrypoint.sh /usr/local/bin/serving-entrypoint
# The commit MLflow records for each run (an image has no .git): make up passes `git rev-parse HEAD`.
ARG GIT_COMMIT=unknown
ENV PATH=/opt/astrospect/.venv/bin:$PATH \
    ASTROSPECT_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONUNBUFFERED=1 \
    ASTROSPECT_HOME=/data \
    BENTOML_HOME=/data/bentoml \
    ASTROSPECT_SERVING_HOST=0.0.0.0 \
    ASTROSPECT_SERVING_PORT=3000 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/astrospect
USER 50000:0
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/serving-entrypoint"]
