"""Every path, URI and tolerance in one place, read from the environment.

Both topologies use the same code: the embedded default keeps everything under ``ASTROSPECT_HOME``
(``./data`` of the checkout); the scaled-out one points the same variables at Postgres, S3 and servers.
``.env.example`` lists every variable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BANDS = "ugriz"
N_BANDS = len(BANDS)
CUTOUT_SIZE = 32  # pixels; 64x64 cubes are centre-cropped to this
PIXEL_SCALE_ARCSEC = 0.396  # SDSS, arcsec / pixel
DRIFT_ACTIONS = ("warn", "retrain")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
S3_RETRY_MODES = ("standard", "adaptive")  # botocore's; "legacy" retries fewer errors and is not offered


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, str(default))).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Construct with :func:`load_settings` so the environment is read once."""

    home: Path
    mlflow_tracking_uri: str
    registered_model_name: str
    experiment_name: str
    # The seed of every split shuffle, weight initialisation and augmentation (``ASTROSPECT_SEED``), and the
    # length of every CNN's learning-rate schedule in epochs (``ASTROSPECT_EPOCHS``): the CLI, the DAG and
    # TrainConfig take their defaults from here.
    seed: int = 42
    epochs: int = 30
    # Training arithmetic: auto (mixed_float16 on a GPU, mixed_bfloat16 on a CPU that has it, else float32).
    precision: str = "auto"
    # The challengers a session trains (names in astrospect.models.registry); empty: the registry's default set.
    challengers: tuple[str, ...] = ()
    # Promotion tolerances (docs/explanation/architecture.md, "Promotion").
    outlier_tolerance: float = 0.002
    bias_tolerance: float = 0.002
    # When champion and challenger both give PDFs, the mean CRPS may grow by at most this (~4% of the PDF
    # CNN's 0.012 on the demo set: below that, run-to-run noise; above, a worse PDF).
    crps_tolerance: float = 0.0005
    # Data gate: S3 transfer tuning (multipart part size, parallel parts, optional throttle in bytes/s)
    # and how many accepted cutouts the flux reference needs before it replaces the shipped one.
    ingest_chunk_bytes: int = 8 * 1024 * 1024
    ingest_max_concurrency: int = 4
    ingest_max_bandwidth: int | None = None
    reference_min_rows: int = 500
    # Every boto3 client (astrospect.data.store.s3_client): botocore's retry mode and total attempts (the
    # first try included) for throttling, 5xx and connection errors, and its connect and read timeouts. A
    # request still failing after them is an environment fault (astrospect.faults): the step fails.
    s3_retry_mode: str = "standard"
    s3_max_attempts: int = 5
    s3_connect_timeout_s: float = 10.0
    s3_read_timeout_s: float = 60.0
    # Data gate: what reading one untrusted file may cost (astrospect/gate/sandbox.py enforces them): wall-clock
    # seconds, memory of the reading process, and the most bytes any dataset it reads may declare.
    gate_timeout_s: float = 300.0
    gate_memory_bytes: int = 2048 * 1024 * 1024
    gate_max_declared_bytes: int = 8192 * 1024 * 1024
    # Serving (docs/explanation/architecture.md, "Serving"): the largest JSON batch, the largest request body, the loopback address.
    serving_max_cutouts: int = 1024
    serving_max_body_bytes: int = 64 * 1024 * 1024
    serving_host: str = "127.0.0.1"
    serving_port: int = 3000
    serving_workers: int = 1  # worker processes, each with its own copy of the model
    # TensorFlow's threads in each worker's model calls (intra-op: inside one op; inter-op: ops at once).
    serving_intra_op_threads: int = 1
    serving_inter_op_threads: int = 1
    # Drift (astrospect.drift): the chance that a night like the reference is flagged (Bonferroni over the
    # features), the share of drifted features a night must exceed to count as drifting, what it then does.
    drift_alpha: float = 0.01
    drift_share: float = 0.0
    drift_action: str = "warn"
    # Tracking: how often a training run's system metrics (CPU, memory, disk, network; GPU utilisation and
    # memory where there is one) are sampled and logged; MLflow's own default, 10 s, leaves a short run none.
    system_metrics_interval_s: float = 2.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def landing_source(self) -> str:
        """Where new shards arrive: ``s3://bucket/prefix/`` or a folder (``ASTROSPECT_LANDING``)."""
        return os.environ.get("ASTROSPECT_LANDING", str(self.landing_dir))

    @property
    def mlflow_ui_url(self) -> str:
        """The MLflow UI as a browser reaches it (``ASTROSPECT_MLFLOW_UI_URL``); in docker it differs from
        the tracking URI the containers use. Defaults to the tracking URI."""
        return os.environ.get("ASTROSPECT_MLFLOW_UI_URL", self.mlflow_tracking_uri).rstrip("/")

    @property
    def store_uri(self) -> str | None:
        """``s3://bucket/prefix/`` holding every shard and manifest for workers on other machines
        (``ASTROSPECT_STORE``); unset, the embedded default keeps them under ``ASTROSPECT_HOME`` only."""
        return os.environ.get("ASTROSPECT_STORE") or None

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
    def bentoml_home(self) -> Path:
        """BentoML's model and bento stores (``BENTOML_HOME``); ``astrospect deploy`` writes the champion here."""
        return _env_path("BENTOML_HOME", self.home / "bentoml")

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


def load_settings() -> Settings:
    home = _env_path("ASTROSPECT_HOME", PROJECT_ROOT / "data")
    cores = os.cpu_count() or 1
    # Serving: one worker process per core (at most 4), TensorFlow in each limited to its share of the cores.
    workers = int(os.environ.get("ASTROSPECT_SERVING_WORKERS", str(min(4, cores))))
    share = max(1, cores // workers)
    return Settings(
        home=home,
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        registered_model_name=os.environ.get("ASTROSPECT_MODEL_NAME", "astrospect-photoz"),
        experiment_name=os.environ.get("ASTROSPECT_EXPERIMENT", "astrospect-photoz"),
        seed=int(os.environ.get("ASTROSPECT_SEED", str(Settings.seed))),
        epochs=_positive_count("ASTROSPECT_EPOCHS", Settings.epochs),
        precision=_one_of("ASTROSPECT_PRECISION", "auto", PRECISIONS),
        challengers=tuple(
            name.strip() for name in os.environ.get("ASTROSPECT_CHALLENGERS", "").split(",") if name.strip()
        ),
        outlier_tolerance=float(os.environ.get("ASTROSPECT_OUTLIER_TOLERANCE", "0.002")),
        bias_tolerance=float(os.environ.get("ASTROSPECT_BIAS_TOLERANCE", "0.002")),
        crps_tolerance=float(os.environ.get("ASTROSPECT_CRPS_TOLERANCE", "0.0005")),
        ingest_chunk_bytes=int(float(os.environ.get("ASTROSPECT_INGEST_CHUNK_MB", "8")) * 1024 * 1024),
        ingest_max_concurrency=int(os.environ.get("ASTROSPECT_INGEST_CONCURRENCY", "4")),
        ingest_max_bandwidth=(
            int(os.environ["ASTROSPECT_INGEST_MAX_BANDWIDTH"])
            if os.environ.get("ASTROSPECT_INGEST_MAX_BANDWIDTH")
            else None
        ),
        reference_min_rows=int(os.environ.get("ASTROSPECT_REFERENCE_MIN_ROWS", "500")),
        s3_retry_mode=_one_of("ASTROSPECT_S3_RETRY_MODE", "standard", S3_RETRY_MODES),
        s3_max_attempts=_positive_count("ASTROSPECT_S3_MAX_ATTEMPTS", 5),  # the first attempt counts
        s3_connect_timeout_s=float(os.environ.get("ASTROSPECT_S3_CONNECT_TIMEOUT_S", "10")),
        s3_read_timeout_s=float(os.environ.get("ASTROSPECT_S3_READ_TIMEOUT_S", "60")),
        gate_timeout_s=float(os.environ.get("ASTROSPECT_GATE_TIMEOUT_S", "300")),
        gate_memory_bytes=int(float(os.environ.get("ASTROSPECT_GATE_MEMORY_MB", "2048")) * 1024 * 1024),
        gate_max_declared_bytes=int(
            float(os.environ.get("ASTROSPECT_GATE_MAX_DECLARED_MB", "8192")) * 1024 * 1024
        ),
        serving_max_cutouts=int(os.environ.get("ASTROSPECT_SERVING_MAX_CUTOUTS", "1024")),
        serving_max_body_bytes=int(
            float(os.environ.get("ASTROSPECT_SERVING_MAX_BODY_MB", "64")) * 1024 * 1024
        ),
        serving_host=os.environ.get("ASTROSPECT_SERVING_HOST", "127.0.0.1"),
        serving_port=int(os.environ.get("ASTROSPECT_SERVING_PORT", "3000")),
        serving_workers=workers,
        serving_intra_op_threads=int(os.environ.get("ASTROSPECT_SERVING_INTRA_OP_THREADS", str(share))),
        serving_inter_op_threads=int(os.environ.get("ASTROSPECT_SERVING_INTER_OP_THREADS", str(share))),
        drift_alpha=_fraction("ASTROSPECT_DRIFT_ALPHA", "0.01"),
        drift_share=_fraction("ASTROSPECT_DRIFT_SHARE", "0"),
        drift_action=_one_of("ASTROSPECT_DRIFT_ACTION", "warn", DRIFT_ACTIONS),
        system_metrics_interval_s=_positive_seconds("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", "2"),
    )


def _positive_count(name: str, default: int) -> int:
    value = int(os.environ.get(name, str(default)))
    if value < 1:
        raise ValueError(f"{name}={value}: expected a positive integer")
    return value


def _positive_seconds(name: str, default: str) -> float:
    value = float(os.environ.get(name, default))
    if not value > 0.0:
        raise ValueError(f"{name}={value}: expected a number of seconds above 0")
    return value


def _fraction(name: str, default: str) -> float:
    value = float(os.environ.get(name, default))
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value}: expected a fraction in [0, 1)")
    return value


def _one_of(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def get_logger(name: str) -> logging.Logger:
    """A logger that prints one readable line per step (Airflow captures it into the task log)."""
    logger = logging.getLogger(name)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(os.environ.get("ASTROSPECT_LOG_LEVEL", "INFO"))
        logger.propagate = False
    return logger
