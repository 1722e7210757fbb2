# syntax=docker/dockerfile:1.7
# The GPU training image: the Celery worker on the `gpu` queue (train_full, train_clipped).
#
# Base: TensorFlow's CUDA image, so the OS layer carries the CUDA runtime and the NVIDIA container settings
# that TensorFlow 2.21 was built and tested with. Python packages still come from uv.lock only
# (`uv sync --locked --extra gpu`: tensorflow[and-cuda] 2.21 and its CUDA wheels, plus Airflow, MLflow and
# the project at the lock's versions), so the GPU worker runs the same code and pins as every other
# container. uv uses the base's Python 3.11 when it has one, else installs CPython 3.11 at build time.
#
# Bases are pinned by tag; pin digests before a release (see app.Dockerfile).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM tensorflow/tensorflow:2.21.0-gpu
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/opt/astrospect/.venv
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/astrospect astrospect \
    && mkdir -p /opt/airflow /data /opt/astrospect /opt/python \
    && chown astrospect:0 /opt/airflow /data /opt/astrospect /opt/python
WORKDIR /opt/astrospect
COPY --chown=astrospect:0 pyproject.toml uv.lock README.md ./
USER 50000:0
RUN uv sync --locked --no-dev --no-install-project --extra gpu --extra rail --python 3.11 \
    && rm -rf /home/astrospect/.cache/uv
COPY --chown=astrospect:0 astrospect ./astrospect
RUN uv sync --locked --no-dev --extra gpu --extra rail --python 3.11 \
    && rm -rf /home/astrospect/.cache/uv
COPY --chown=astrospect:0 dags ./dags
COPY --chown=astrospect:0 expectations ./expectations
# The commit MLflow records for each run (an image has no .git): make up passes `git rev-parse HEAD`.
ARG GIT_COMMIT=unknown
ENV PATH=/opt/astrospect/.venv/bin:$PATH \
    ASTROSPECT_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/astrospect/dags \
    ASTROSPECT_HOME=/data \
    TF_CPP_MIN_LOG_LEVEL=2
CMD ["airflow", "celery", "worker", "--queues", "gpu"]
