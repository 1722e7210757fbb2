"""Every path, URI, default and tolerance in one place, read from the environment once.

Both topologies use the same code: the embedded default keeps everything under ``ASTROSPECT_HOME``
(``./data`` of the checkout); the scaled-out one points the same variables at Postgres, S3 and servers.
``.env.example`` lists every variable; docs/reference/settings.md is generated from the fields below.

This is the only module that reads the environment (``make lint`` bans ``os.environ`` and ``os.getenv``
elsewhere in ``astrospect/`` and ``dags/``: ruff's TID251). :func:`load_settings` returns one frozen
:class:`Settings`. It is built with pydantic-settings because that gives, for the cost of declaring each field
once: typed parsing of every variable (ints, floats, paths, choices, comma lists) with a clear error that
names the variable, its value and the reason, instead of a hand-written reader per type; a frozen model, so
no code changes a setting under another's feet; and each field's description, alias and default in one
declaration, from which the settings reference is generated (harness/docs/settings_reference.py). It is
already in the locked environment (MLflow and BentoML depend on it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BANDS = "ugriz"
N_BANDS = len(BANDS)
CUTOUT_SIZE = 32  # pixels; 64x64 cubes are centre-cropped to this
PIXEL_SCALE_ARCSEC = 0.396  # SDSS, arcsec / pixel
DRIFT_ACTIONS = ("warn", "retrain")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# "auto": mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 arithmetic (AMX-BF16 or AVX512-BF16;
# measured 2.4x float32's images/s here), float32 elsewhere. The saved model is float32.
Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
S3_RETRY_MODES = ("standard", "adaptive")  # botocore's; "legacy" retries fewer errors and is not offered
CORES = os.cpu_count() or 1
MB = 1024 * 1024


def _megabytes(value: Any) -> Any:
    """A variable given in MB (``ASTROSPECT_*_MB``) as the field's bytes; defaults are written in bytes."""
    return int(float(value) * MB) if isinstance(value, str) else value


def _comma_list(value: Any) -> Any:
    return (
        tuple(name.strip() for name in value.split(",") if name.strip()) if isinstance(value, str) else value
    )


Megabytes = Annotated[int, BeforeValidator(_megabytes)]


def _variable(name: str | AliasChoices, default: Any, description: str, **constraints: Any) -> Any:
    """A field read from the environment variable ``name``, documented by ``description``."""
    return Field(default, validation_alias=name, description=description, **constraints)


class Settings(BaseSettings):
    """Runtime configuration, frozen. Get it with :func:`load_settings`; a test changes a copy with
    :meth:`replace`."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,  # NAME= in a shell or compose file means unset, as it always did
        validate_by_name=True,
        extra="ignore",
    )

    home: Path = _variable(
        "ASTROSPECT_HOME",
        PROJECT_ROOT / "data",
        "Each machine's own working folder: the gate's ledger, landing copies, caches, models, BentoML's store.",
    )
    mlflow_tracking_uri: str = _variable(
        "MLFLOW_TRACKING_URI", "http://127.0.0.1:5000", "The MLflow tracking server (and registry)."
    )
    mlflow_ui: str | None = _variable(
        "ASTROSPECT_MLFLOW_UI_URL",
        None,
        "The MLflow UI as a browser reaches it; in docker it differs from the tracking URI the containers "
        "use. Unset: the tracking URI.",
    )
    registered_model_name: str = _variable(
        "ASTROSPECT_MODEL_NAME", "astrospect-photoz", "The registered model the champion alias lives on."
    )
    experiment_name: str = _variable(
        "ASTROSPECT_EXPERIMENT", "astrospect-photoz", "The MLflow experiment of every session's runs."
    )
    log_level: str = _variable("ASTROSPECT_LOG_LEVEL", "INFO", "The level of astrospect's own log lines.")
    seed: int = _variable(
        "ASTROSPECT_SEED",
        42,
        "The seed of every split shuffle, weight initialisation and augmentation: `astrospect train --seed`, "
        "the DAG and TrainConfig default to it.",
    )
    epochs: int = _variable(
        "ASTROSPECT_EPOCHS",
        30,
        "The length of every CNN's learning-rate schedule in epochs (early stopping may end sooner): the "
        "DAG's `epochs` param, `astrospect train --epochs` and TrainConfig default to it.",
        gt=0,
    )
    precision: Precision = _variable(
        "ASTROSPECT_PRECISION",
        "auto",
        "Training arithmetic: auto (mixed_float16 on a GPU, mixed_bfloat16 on a CPU that has it, else "
        "float32), float32, mixed_bfloat16, mixed_float16.",
    )
    challengers: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)] = _variable(
        "ASTROSPECT_CHALLENGERS",
        (),
        "The challengers a session trains, comma-separated names (astrospect.models.registry); empty: the "
        "registry's default set.",
    )
    train_queue: str = _variable(
        "ASTROSPECT_TRAIN_QUEUE", "gpu", "The Celery queue of the DAG's training tasks (the GPU worker's)."
    )
    io_retries: int = _variable(
        "ASTROSPECT_IO_RETRIES",
        3,
        "Retries, with exponential back-off, of the DAG's tasks that touch storage or servers.",
        ge=0,
    )
    # Promotion tolerances (docs/explanation/architecture.md, "Promotion").
    outlier_tolerance: float = _variable(
        "ASTROSPECT_OUTLIER_TOLERANCE", 0.002, "Promotion: how much the outlier rate may grow.", ge=0
    )
    bias_tolerance: float = _variable(
        "ASTROSPECT_BIAS_TOLERANCE", 0.002, "Promotion: how much the absolute bias may grow.", ge=0
    )
    crps_tolerance: float = _variable(
        "ASTROSPECT_CRPS_TOLERANCE",
        0.0005,
        "Promotion, when champion and challenger both give PDFs: how much the mean CRPS may grow (~4% of the "
        "PDF CNN's 0.012 on the demo set: below that, run-to-run noise; above, a worse PDF).",
        ge=0,
    )
    landing: str | None = _variable(
        "ASTROSPECT_LANDING",
        None,
        "Where new shards arrive: s3://bucket/prefix/ or a folder. Unset: ASTROSPECT_HOME/landing.",
    )
    store_uri: str | None = _variable(
        "ASTROSPECT_STORE",
        None,
        "s3://bucket/prefix/ holding every shard and manifest for workers on other machines; unset, the "
        "embedded default keeps them under ASTROSPECT_HOME only.",
    )
    s3_endpoint_url: str | None = _variable(
        AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        None,
        "A custom S3 endpoint (MinIO, moto, any S3-compatible store): boto3 reads it itself; set, every "
        "client uses path-style addressing, which a plain host:port needs.",
    )
    # Data gate: S3 transfer tuning and how many accepted cutouts the flux reference needs before it
    # replaces the shipped one.
    ingest_chunk_bytes: Megabytes = _variable(
        "ASTROSPECT_INGEST_CHUNK_MB", 8 * MB, "Ingest: the multipart part size (the variable in MB).", gt=0
    )
    ingest_max_concurrency: int = _variable(
        "ASTROSPECT_INGEST_CONCURRENCY", 4, "Ingest: parts transferred at once.", gt=0
    )
    ingest_max_bandwidth: int | None = _variable(
        "ASTROSPECT_INGEST_MAX_BANDWIDTH", None, "Ingest: a throttle in bytes/s; unset, unthrottled.", gt=0
    )
    reference_min_rows: int = _variable(
        "ASTROSPECT_REFERENCE_MIN_ROWS",
        500,
        "Accepted cutouts the flux reference needs before it replaces the shipped one.",
        gt=0,
    )
    # Every boto3 client (astrospect.data.store.s3_client). A request still failing after these retries is
    # an environment fault (astrospect.faults): the step fails.
    s3_retry_mode: Literal["standard", "adaptive"] = _variable(
        "ASTROSPECT_S3_RETRY_MODE",
        "standard",
        "botocore's retry mode for throttling, 5xx and connection errors.",
    )
    s3_max_attempts: int = _variable(
        "ASTROSPECT_S3_MAX_ATTEMPTS", 5, "Total attempts of an S3 request, the first included.", gt=0
    )
    s3_connect_timeout_s: float = _variable(
        "ASTROSPECT_S3_CONNECT_TIMEOUT_S", 10.0, "S3 connect timeout in seconds.", gt=0
    )
    s3_read_timeout_s: float = _variable(
        "ASTROSPECT_S3_READ_TIMEOUT_S", 60.0, "S3 read timeout in seconds.", gt=0
    )
    # Data gate: what reading one untrusted file may cost (astrospect/gate/sandbox.py enforces them).
    gate_timeout_s: float = _variable(
        "ASTROSPECT_GATE_TIMEOUT_S", 300.0, "Gate: wall-clock seconds to read one untrusted file.", gt=0
    )
    gate_memory_bytes: Megabytes = _variable(
        "ASTROSPECT_GATE_MEMORY_MB",
        2048 * MB,
        "Gate: memory of the reading process (the variable in MB).",
        gt=0,
    )
    gate_max_declared_bytes: Megabytes = _variable(
        "ASTROSPECT_GATE_MAX_DECLARED_MB",
        8192 * MB,
        "Gate: the most bytes any dataset a file declares may hold (the variable in MB).",
        gt=0,
    )
    # Serving (docs/explanation/architecture.md, "Serving").
    serving_max_cutouts: int = _variable(
        "ASTROSPECT_SERVING_MAX_CUTOUTS", 1024, "Serving: the largest batch of cutouts in one request.", gt=0
    )
    serving_max_body_bytes: Megabytes = _variable(
        "ASTROSPECT_SERVING_MAX_BODY_MB",
        64 * MB,
        "Serving: the largest request body (the variable in MB).",
        gt=0,
    )
    serving_host: str = _variable(
        "ASTROSPECT_SERVING_HOST", "127.0.0.1", "Serving: the address to listen on."
    )
    serving_port: int = _variable("ASTROSPECT_SERVING_PORT", 3000, "Serving: the port.", gt=0, lt=65536)
    serving_workers: int = Field(
        default_factory=lambda: min(4, CORES),
        validation_alias="ASTROSPECT_SERVING_WORKERS",
        description="Serving: worker processes, each with its own copy of the model. Unset: one per core, "
        "at most 4.",
        gt=0,
    )
    serving_intra_op_threads: int = Field(
        default_factory=lambda data: max(1, CORES // data["serving_workers"]),
        validation_alias="ASTROSPECT_SERVING_INTRA_OP_THREADS",
        description="Serving: TensorFlow's threads inside one op, in each worker. Unset: the worker's share "
        "of the cores.",
        gt=0,
    )
    serving_inter_op_threads: int = Field(
        default_factory=lambda data: max(1, CORES // data["serving_workers"]),
        validation_alias="ASTROSPECT_SERVING_INTER_OP_THREADS",
        description="Serving: TensorFlow's ops run at once, in each worker. Unset: the worker's share of the "
        "cores.",
        gt=0,
    )
    # Drift (astrospect.drift).
    drift_alpha: float = _variable(
        "ASTROSPECT_DRIFT_ALPHA",
        0.01,
        "Drift: the chance that a night like the reference is flagged (Bonferroni over the features).",
        ge=0,
        lt=1,
    )
    drift_share: float = _variable(
        "ASTROSPECT_DRIFT_SHARE",
        0.0,
        "Drift: the share of drifted features a night must exceed to count as drifting (0: any one).",
        ge=0,
        lt=1,
    )
    drift_action: Literal["warn", "retrain"] = _variable(
        "ASTROSPECT_DRIFT_ACTION", "warn", "Drift: what a drifting night does: warn, or retrain."
    )
    system_metrics_interval_s: float = _variable(
        "ASTROSPECT_SYSTEM_METRICS_INTERVAL_S",
        2.0,
        "Tracking: how often a training run's system metrics are sampled; MLflow's own 10 s leaves a short "
        "run none.",
        gt=0,
    )
    bentoml_store: Path | None = _variable(
        "BENTOML_HOME",
        None,
        "BentoML's model and bento stores (`astrospect deploy` writes the champion there). Unset: "
        "ASTROSPECT_HOME/bentoml.",
    )
    results_dir: Path = _variable(
        "ASTROSPECT_RESULTS_DIR",
        PROJECT_ROOT / "docs" / "results",
        "Where benchmarks and studies write their results files (astrospect.results).",
    )
    git_commit: str | None = _variable(
        "ASTROSPECT_GIT_COMMIT",
        None,
        "The commit every run records, in images without a checkout. Unset: asked of git.",
    )

    @field_validator("home", "bentoml_store", "results_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's declared default (``Settings.default("seed")``), for a default written elsewhere."""
        return cls.model_fields[name].get_default(call_default_factory=False)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values as the fields hold them: bytes, not MB); for tests and
        harnesses that give a step its own home or server."""
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"Settings has no field {', '.join(sorted(unknown))}")
        return self.model_copy(update=changes)

    @property
    def landing_source(self) -> str:
        """Where new shards arrive: ``s3://bucket/prefix/`` or a folder (``ASTROSPECT_LANDING``)."""
        return self.landing or str(self.landing_dir)

    @property
    def mlflow_ui_url(self) -> str:
        """The MLflow UI as a browser reaches it; defaults to the tracking URI."""
        return (self.mlflow_ui or self.mlflow_tracking_uri).rstrip("/")

    @property
    def bentoml_home(self) -> Path:
        """BentoML's model and bento stores (``BENTOML_HOME``); ``astrospect deploy`` writes the champion here."""
        return self.bentoml_store or self.home / "bentoml"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def cache_dir(self) -> Path:
        """This machine's verified copies of shards fetched from the store, named by sha256."""
        return self.home / "cache"

    @property
    def ledger_path(self) -> Path:
        """SQLite ledger of every ingested shard: source, sha256, size, rows, status, release reasons."""
        return self.home / "ledger.sqlite"

    @property
    def expectations_dir(self) -> Path:
        """The Great Expectations suites (JSON, reviewed like code) and the shipped flux reference."""
        return PROJECT_ROOT / "expectations"

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def accepted_dir(self) -> Path:
        return self.home / "accepted"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def drift_cache_dir(self) -> Path:
        """Reference features and predictions, computed once per snapshot (and model) version."""
        return self.home / "drift-cache"


class SettingsError(ValueError):
    """An environment variable the settings read has a value they cannot use."""


def _variable_names() -> tuple[str, ...]:
    names: list[str] = []
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        names.extend(
            [alias]
            if isinstance(alias, str)
            else [c for c in getattr(alias, "choices", ()) if isinstance(c, str)]
        )
    return tuple(names)


VARIABLES = _variable_names()
_built: dict[tuple[str | None, ...], Settings] = {}


def load_settings() -> Settings:
    """The one :class:`Settings` of this process, built from the environment on the first call.

    It is built again only if one of the variables it reads has changed since: a running service or task
    never changes them, but tests and harnesses set them in-process (``monkeypatch.setenv``, a CLI runner's
    ``env``) and then expect the code they call to see them. A bad value raises :class:`SettingsError`
    naming each variable, its value and what was expected."""
    key = tuple(os.environ.get(name) for name in VARIABLES)
    settings = _built.get(key)
    if settings is None:
        try:
            settings = Settings()
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, problem['loc']))}={problem['input']!r}: {problem['msg']}"
                for problem in error.errors()
                if problem["type"] != "default_factory_not_called"  # follows from another problem
            )
            raise SettingsError(f"invalid settings: {problems}") from None
        _built.clear()  # one object per process: the one for the environment as it is now
        _built[key] = settings
    return settings


def child_environment(
    overrides: Mapping[str, str] = {}, *, defaults: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment for a child process: this one's, over ``defaults``, under ``overrides``. Passing the
    environment on is not reading a setting, so it is done here, where ``os.environ`` may be named."""
    return {**defaults, **os.environ, **overrides}


def export_environment(values: Mapping[str, str], *, defaults: Mapping[str, str] = {}) -> None:
    """Set variables in this process for a library that reads them itself (BentoML's ``BENTOML_HOME``):
    ``values`` always, ``defaults`` only where unset."""
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ.update(values)


def get_logger(name: str) -> logging.Logger:
    """A logger that prints one readable line per step (Airflow captures it into the task log)."""
    logger = logging.getLogger(name)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(load_settings().log_level)
        logger.propagate = False
    return logger
