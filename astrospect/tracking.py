"""MLflow tracking: one parent run per training session, one child run per model, the registry's versions.

A session (one nightly DAG run, or one ``make run``) is a parent run; its children are the CNN variants
``full`` and ``clipped`` and the colour baselines (tag ``variant``), so the UI's compare view puts them side
by side. The DAG trains the variants in separate processes, so every function takes the parent's run id
and talks to the tracking server through ids alone; each is idempotent, so a retried task finds the run it
already logged instead of adding a second one.

The MLflow 3.17 UI opens an experiment on the GenAI overview unless the URL says
``workflowType=machine_learning`` (read by its WorkflowTypeProvider; the experiment tag
``mlflow.experimentKind`` is only consulted when that feature flag is off). The experiment carries both,
and every URL printed here carries the parameter, so a user lands on the runs table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrospect.metrics import METRIC_NAMES
from astrospect.settings import CUTOUT_SIZE, N_BANDS, PROJECT_ROOT, Settings, get_logger

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

    from astrospect.evaluate import Evaluation
    from astrospect.pipeline import VariantOutcome
    from astrospect.train import TrainResult

log = get_logger(__name__)

# Tags. `variant` is the one a user filters on in the UI; the rest say what a run is and where it came from.
TAG_VARIANT = "variant"
TAG_ROLE = "astrospect.role"  # "session" (parent), "cnn" or "baseline" (children)
TAG_DATA_VARIANT = "astrospect.data_variant"  # which training clipping a baseline used
TAG_DATASET_VERSION = "dataset_version"
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_GIT_COMMIT = "git_commit"
TAG_PARENT = "mlflow.parentRunId"
TAG_NOTE = "mlflow.note.content"
ROLE_SESSION, ROLE_CNN, ROLE_BASELINE = "session", "cnn", "baseline"
BASELINE_VARIANT = "baseline-knn"
CHALLENGER_ALIAS, CHAMPION_ALIAS = "challenger", "champion"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # shown as "Machine learning" in the UI
UI_WORKFLOW_QUERY = "workflowType=machine_learning"
MODEL_ARTIFACT_NAME = "model"
_PROBE_TIMEOUT_S = 5.0
_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


class TrackingServerError(RuntimeError):
    """The tracking URI is malformed or no MLflow server answers there. Raised before any training starts."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(
            f"MLflow tracking URI {uri!r}: {reason}. Set MLFLOW_TRACKING_URI to a running server "
            "(for the embedded one: `make mlflow-up`, then http://127.0.0.1:5000)."
        )


@dataclass(frozen=True)
class VariantRun:
    """A logged CNN: its child run and the registry version it became."""

    run_id: str
    model_version: str
    model_uri: str  # models:/<name>/<version>
    reused: bool = False  # True when a retried call found the run already logged

    def summary(self) -> dict[str, Any]:
        """JSON-able, for Airflow's XCom."""
        return asdict(self)


def check_tracking_server(uri: str) -> None:
    """Raise :class:`TrackingServerError` unless ``uri`` is an http(s) URL where an MLflow server answers.

    MLflow's own client retries an unreachable server for about four minutes (measured: 246 s) before it
    gives up; this probe answers in milliseconds. :func:`start_session` and the promote/report commands
    call it first, so nothing trains against a server that is not there.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        raise TrackingServerError(
            uri, f"expected an http:// or https:// server URL, got scheme {parsed.scheme!r}"
        )
    try:
        port = parsed.port
    except ValueError as error:
        raise TrackingServerError(uri, f"malformed port ({error})") from error
    if not parsed.hostname:
        raise TrackingServerError(uri, "no host name in the URL")
    base = uri.rstrip("/")
    probe = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=_PROBE_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise TrackingServerError(
            uri, f"the server at {parsed.hostname}:{port} answered HTTP {error.code} to an MLflow API call"
        ) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerError(uri, f"unreachable ({reason})") from error
    try:
        json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise TrackingServerError(uri, "the server answered, but not with MLflow's JSON API") from error


def client_for(settings: Settings) -> MlflowClient:
    """Point MLflow (fluent API and client) at the settings' server and return a client."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )


def ensure_experiment(settings: Settings) -> str:
    """The experiment's id, creating it (safe when parallel tasks race) and setting it up for model training."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(settings.experiment_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(settings.experiment_name)
            assert experiment is not None
            experiment_id = experiment.experiment_id
        experiment = client.get_experiment(experiment_id)
    wanted = {
        EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
        TAG_NOTE: (
            "Photometric redshifts from ugriz cutouts. Each parent run is one training session; its children "
            "are the CNN variants `full` and `clipped` and the colour k-NN baseline (tag `variant`). "
            "Select a parent's children and press Compare to see the metric tables side by side."
        ),
    }
    for key, value in wanted.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return str(experiment.experiment_id)


def start_session(
    settings: Settings,
    dataset_version: str,
    shards: Sequence[Path | str],
    airflow_run_id: str | None = None,
) -> str:
    """Open a parent run for one training session and return its id.

    With an Airflow run id the call is idempotent: a retried or cleared DAG run gets its existing parent
    back (found by tag) instead of a second one. Fails fast (:class:`TrackingServerError`) when no server
    answers, so a session never trains for hours and then finds it cannot log.
    """
    check_tracking_server(settings.mlflow_tracking_uri)
    client = client_for(settings)
    experiment_id = ensure_experiment(settings)
    if airflow_run_id is not None:
        existing = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_SESSION}' and tags.{TAG_AIRFLOW_RUN_ID} = '{_quoted(airflow_run_id)}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if existing:
            run = existing[0]
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
            log.info("session for Airflow run %s: reusing parent run %s", airflow_run_id, run.info.run_id)
            return str(run.info.run_id)
    tags = _context_tags(dataset_version, airflow_run_id) | {TAG_ROLE: ROLE_SESSION}
    run_name = f"nightly {airflow_run_id}" if airflow_run_id else f"session {_utc_stamp()}"
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    client.log_param(run_id, "dataset_version", dataset_version)
    client.log_param(run_id, "n_shards", len(shards))
    client.log_inputs(run_id, datasets=[_dataset_input(dataset_version, shards)])
    _log_json(
        client,
        run_id,
        {"dataset_version": dataset_version, "shards": [str(s) for s in shards]},
        "dataset/shards.json",
    )
    log.info(
        "session %s: parent run %s in experiment %s (%d shards)", run_name, run_id, experiment_id, len(shards)
    )
    return run_id


def log_variant_run(
    parent_run_id: str,
    variant: str,
    train_result: TrainResult,
    evaluation: Evaluation,
    plots: Sequence[Path],
    settings: Settings,
) -> VariantRun:
    """Log one trained CNN as a child run, register it as a new version and point ``challenger`` at it.

    Idempotent per (parent, variant): a retried task that finds a FINISHED child returns it unchanged; a
    child left RUNNING by a crashed attempt is marked FAILED and a fresh one is logged.
    """
    import mlflow

    existing = find_variant_run(settings, parent_run_id, variant)
    if existing is not None:
        log.info(
            "variant %s already logged in run %s (version %s); not logging again",
            variant,
            existing.run_id,
            existing.model_version,
        )
        return existing
    client = client_for(settings)
    parent = client.get_run(parent_run_id)
    _fail_unfinished_children(client, parent, variant=variant, role=ROLE_CNN)

    config = train_result.config
    dataset_version = getattr(config, "dataset_version", None) or parent.data.tags.get(
        TAG_DATASET_VERSION, "unknown"
    )
    shards = list(getattr(config, "shards", []) or [])
    tags = _context_tags(dataset_version, parent.data.tags.get(TAG_AIRFLOW_RUN_ID)) | {
        TAG_PARENT: parent_run_id,
        TAG_VARIANT: variant,
        TAG_ROLE: ROLE_CNN,
    }
    run = client.create_run(parent.info.experiment_id, run_name=variant, tags=tags)
    run_id = str(run.info.run_id)
    # The fluent API refuses to resume a run outside the process's active experiment, which may be
    # whatever an earlier caller in this process chose: make it this run's experiment.
    mlflow.set_experiment(experiment_id=parent.info.experiment_id)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        params = _config_params(config) | {
            "n_train": train_result.n_train,
            "n_val": train_result.n_val,
            "epochs_run": len(next(iter(train_result.history.values()), [])),
            "z_min": getattr(train_result, "z_range", (math.nan, math.nan))[0],
            "z_max": getattr(train_result, "z_range", (math.nan, math.nan))[1],
            "device": getattr(train_result, "device", "unknown"),
        }
        _log_params(client, run_id, params)
        if shards:
            client.log_inputs(run_id, datasets=[_dataset_input(dataset_version, shards)])
        _log_history(client, run_id, train_result.history)
        client.log_metric(run_id, "images_per_second", float(train_result.images_per_second))
        _log_evaluation(client, run_id, evaluation)
        for plot in plots:
            client.log_artifact(run_id, str(plot), "plots")
        model_info = _log_keras_model(train_result.model, train_result.input_example, variant)
        version = mlflow.register_model(
            model_info.model_uri,
            settings.registered_model_name,
            tags={
                TAG_VARIANT: variant,
                "session_run_id": parent_run_id,
                TAG_DATASET_VERSION: dataset_version,
                **{f"holdout.{name}": f"{evaluation.metrics[name]:.6g}" for name in METRIC_NAMES},
            },
        )
        if str(version.run_id) != run_id:
            raise RuntimeError(
                f"registered version {version.version} points at run {version.run_id}, expected {run_id}"
            )
        client.set_registered_model_alias(settings.registered_model_name, CHALLENGER_ALIAS, version.version)
        client.set_tag(run_id, "model_version", str(version.version))
    log.info(
        "logged %s: run %s, model version %s (sigma_mad %.4f, mae %.4f)",
        variant,
        run_id,
        version.version,
        evaluation.metrics["sigma_mad"],
        evaluation.metrics["mae"],
    )
    return VariantRun(run_id, str(version.version), _version_uri(settings, version.version))


def find_variant_run(settings: Settings, parent_run_id: str, variant: str) -> VariantRun | None:
    """The session's FINISHED child for ``variant`` and its registered version, or None if not logged yet."""
    client = client_for(settings)
    finished = _finished_child(client, client.get_run(parent_run_id), variant=variant, role=ROLE_CNN)
    if finished is None:
        return None
    version = _version_of_run(client, settings.registered_model_name, finished.info.run_id)
    if version is None:
        return None
    return VariantRun(
        str(finished.info.run_id), str(version.version), _version_uri(settings, version.version), reused=True
    )


def session_for_dataset(
    settings: Settings, dataset_version: str, variants: Sequence[str] = ("full", "clipped")
) -> str | None:
    """The newest session that finished training every one of ``variants`` on ``dataset_version``, or None.

    The DAG's short-circuit: a dataset version already trained is not trained again (unless forced).
    """
    client = client_for(settings)
    sessions = _sessions_newest_first(
        client, settings, f" and tags.{TAG_DATASET_VERSION} = '{_quoted(dataset_version)}'"
    )
    for session in sessions:
        trained = {
            run.data.tags.get(TAG_VARIANT)
            for run in _children(client, session, role=ROLE_CNN, status="FINISHED")
        }
        if set(variants) <= trained:
            return str(session.info.run_id)
    return None


def log_baseline_run(
    parent_run_id: str,
    evaluation: Evaluation,
    settings: Settings,
    params: Mapping[str, Any] | None = None,
    plots: Sequence[Path] = (),
) -> str:
    """Log the colour k-NN baseline as a child run named after the evaluation (``baseline-knn-full``...).

    Tag ``variant`` is ``baseline-knn``; the training clipping it used is ``astrospect.data_variant``.
    Idempotent per (parent, run name). Not registered: the registry holds CNNs only.
    """
    client = client_for(settings)
    parent = client.get_run(parent_run_id)
    run_name = evaluation.name
    finished = _finished_child(client, parent, run_name=run_name, role=ROLE_BASELINE)
    if finished is not None:
        log.info("baseline %s already logged in run %s; not logging again", run_name, finished.info.run_id)
        return str(finished.info.run_id)
    _fail_unfinished_children(client, parent, run_name=run_name, role=ROLE_BASELINE)
    dataset_version = parent.data.tags.get(TAG_DATASET_VERSION, "unknown")
    tags = _context_tags(dataset_version, parent.data.tags.get(TAG_AIRFLOW_RUN_ID)) | {
        TAG_PARENT: parent_run_id,
        TAG_VARIANT: BASELINE_VARIANT,
        TAG_ROLE: ROLE_BASELINE,
        TAG_DATA_VARIANT: evaluation.variant,
    }
    run_id = str(client.create_run(parent.info.experiment_id, run_name=run_name, tags=tags).info.run_id)
    try:
        _log_params(
            client,
            run_id,
            {"model": "kNN on ugriz aperture colours", "data_variant": evaluation.variant, **(params or {})},
        )
        _log_evaluation(client, run_id, evaluation)
        for plot in plots:
            client.log_artifact(run_id, str(plot), "plots")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    log.info("logged %s: run %s (sigma_mad %.4f)", run_name, run_id, evaluation.metrics["sigma_mad"])
    return run_id


def log_variant_outcome(parent_run_id: str, outcome: VariantOutcome, settings: Settings) -> VariantRun:
    """Log what :func:`astrospect.pipeline.run_variant` produced: the CNN run and its baseline's run."""
    variant = outcome.train_result.config.variant
    logged = log_variant_run(
        parent_run_id, variant, outcome.train_result, outcome.evaluation, outcome.plots, settings
    )
    baseline_params = {
        "k": outcome.baseline.k,
        "aperture_arcsec": outcome.baseline.aperture_arcsec,
        "val_sigma_mad": outcome.baseline.val_sigma_mad,
    }
    log_baseline_run(parent_run_id, outcome.baseline_evaluation, settings, params=baseline_params)
    return logged


def end_session(parent_run_id: str, settings: Settings, status: str = "FINISHED") -> str:
    """Close the parent run; its note links the compare view of its children. Returns that URL."""
    client = client_for(settings)
    url = compare_url(parent_run_id, settings)
    client.set_tag(
        parent_run_id, TAG_NOTE, f"Compare this session's runs side by side: [compare view]({url})"
    )
    client.set_terminated(parent_run_id, status=status)
    log.info("session %s %s; compare view: %s", parent_run_id, status.lower(), url)
    return url


def session_children(settings: Settings, parent_run_id: str) -> list[Run]:
    """The FINISHED children of a session: CNNs first (full, clipped, ...), then baselines, by name."""
    client = client_for(settings)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.{TAG_PARENT} = '{parent_run_id}' and attributes.status = 'FINISHED'",
        max_results=100,
    )
    variant_order = {"full": 0, "clipped": 1}

    def order(run: Run) -> tuple[int, int, str]:
        is_baseline = run.data.tags.get(TAG_ROLE) == ROLE_BASELINE
        data_variant = run.data.tags.get(TAG_DATA_VARIANT if is_baseline else TAG_VARIANT, "")
        return (int(is_baseline), variant_order.get(data_variant, 9), run.info.run_name or "")

    return sorted(runs, key=order)


def latest_session(settings: Settings) -> Run | None:
    """The most recent parent run that has at least one finished child, or None."""
    for session in _sessions_newest_first(client_for(settings), settings, max_results=20):
        if session_children(settings, session.info.run_id):
            return session
    return None


def _sessions_newest_first(
    client: MlflowClient, settings: Settings, extra_filter: str = "", max_results: int = 1000
) -> list[Run]:
    """Parent (session) runs of the experiment, newest first; none when the experiment does not exist yet."""
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_SESSION}'{extra_filter}",
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    )


def experiment_url(settings: Settings) -> str:
    """The experiment's runs table in the UI (the machine-learning view, not the GenAI overview)."""
    experiment_id = ensure_experiment(settings)
    return f"{settings.mlflow_ui_url}/#/experiments/{experiment_id}/runs?{UI_WORKFLOW_QUERY}"


def compare_url(parent_run_id: str, settings: Settings) -> str:
    """The UI's compare view of a session's finished children (full, clipped, baselines)."""
    children = session_children(settings, parent_run_id)
    if not children:
        raise LookupError(f"parent run {parent_run_id} has no finished child runs to compare")
    run_ids = [run.info.run_id for run in children]
    experiment_ids = sorted({run.info.experiment_id for run in children})
    return compare_url_for(settings.mlflow_ui_url, run_ids, experiment_ids)


def compare_url_for(base_url: str, run_ids: Sequence[str], experiment_ids: Sequence[str]) -> str:
    """``<base>/#/compare-runs?runs=[...]&experiments=[...]``, the JSON lists percent-encoded."""

    def encoded(values: Sequence[str]) -> str:
        return urllib.parse.quote(json.dumps(list(values), separators=(",", ":")), safe="")

    return f"{base_url.rstrip('/')}/#/compare-runs?runs={encoded(run_ids)}&experiments={encoded(experiment_ids)}&{UI_WORKFLOW_QUERY}"


def load_registered_model(settings: Settings, alias_or_version: str = CHAMPION_ALIAS) -> keras.Model:
    """Load ``models:/<name>@<alias>`` (or ``models:/<name>/<version>`` for a number) as a Keras model."""
    import mlflow.tensorflow

    import astrospect.model  # noqa: F401  (registers the BandStretch layer that the saved model uses)

    client_for(settings)
    return mlflow.tensorflow.load_model(model_uri(settings, alias_or_version))


def model_uri(settings: Settings, alias_or_version: str) -> str:
    name = settings.registered_model_name
    return (
        f"models:/{name}/{alias_or_version}"
        if alias_or_version.isdigit()
        else f"models:/{name}@{alias_or_version}"
    )


# --- helpers -------------------------------------------------------------------------------------------


def _version_uri(settings: Settings, version: str | int) -> str:
    return f"models:/{settings.registered_model_name}/{version}"


def _quoted(value: str) -> str:
    """A value for an MLflow search filter's single-quoted string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _utc_stamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def git_commit() -> str:
    """The checkout's commit (``-dirty`` when it has uncommitted changes); ``ASTROSPECT_GIT_COMMIT`` in images."""
    if "ASTROSPECT_GIT_COMMIT" in os.environ:
        return os.environ["ASTROSPECT_GIT_COMMIT"]
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def _context_tags(dataset_version: str, airflow_run_id: str | None) -> dict[str, str]:
    """Who, where and from which code: MLflow's own context tags plus ours."""
    from mlflow.tracking.context.registry import resolve_tags

    commit = git_commit()
    tags = {str(k): str(v) for k, v in resolve_tags().items()}
    tags |= {TAG_GIT_COMMIT: commit, TAG_DATASET_VERSION: dataset_version}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    if airflow_run_id:
        tags[TAG_AIRFLOW_RUN_ID] = airflow_run_id
    return tags


def _dataset_input(dataset_version: str, shards: Sequence[Path | str]) -> Any:
    """The shard set as an MLflow dataset input: name = version, profile = the shard list."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    class ShardSet(MetaDataset):
        """Metadata only (the pixels stay in the shards); the profile lists every shard."""

        @property
        def profile(self) -> dict[str, Any]:
            return {"n_shards": len(shards), "shards": [Path(s).name for s in shards]}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    names = sorted(str(s) for s in shards)
    digest = hashlib.sha256("\n".join([dataset_version, *names]).encode()).hexdigest()[:12]
    folders = {str(Path(s).parent) for s in shards}
    location = (
        folders.pop()
        if len(folders) == 1
        else os.path.commonpath([str(s) for s in shards])
        if shards
        else "."
    )
    with warnings.catch_warnings():
        # "file" and "" both map to the local artifact source: the same class twice, not a real ambiguity.
        warnings.filterwarnings(
            "ignore", message="The specified dataset source can be interpreted in multiple ways"
        )
        source = resolve_dataset_source(location)
    dataset = ShardSet(source, name=f"astrospect-{dataset_version}", digest=digest)
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"), InputTag(TAG_DATASET_VERSION, dataset_version)]
    return DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)


def _config_params(config: Any) -> dict[str, Any]:
    """Every hyperparameter of the training config (shard paths go to the dataset input instead)."""
    if hasattr(config, "params"):
        return dict(config.params())
    if is_dataclass(config) and not isinstance(config, type):
        values = asdict(config)
        values.pop("shards", None)
        values.pop("out_dir", None)
        return values
    raise TypeError(
        f"training config of type {type(config).__name__} is neither a dataclass nor has params()"
    )


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    entries = [Param(str(key), "None" if value is None else str(value)) for key, value in params.items()]
    client.log_batch(run_id, params=entries)


def _curve_name(history_key: str) -> str:
    """Keras' ``loss``/``mae`` are training curves; named so they never collide with the holdout ``mae``."""
    return history_key if history_key.startswith("val_") else f"train_{history_key}"


def _log_history(client: MlflowClient, run_id: str, history: Mapping[str, Sequence[float]]) -> None:
    """Per-epoch curves, step = epoch (1-based, as the log lines count)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(_curve_name(key), float(value), now, epoch)
        for key, values in history.items()
        for epoch, value in enumerate(values, start=1)
    ]
    for start in range(0, len(metrics), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])


def _log_evaluation(client: MlflowClient, run_id: str, evaluation: Evaluation) -> None:
    """The holdout metric table as metrics and as a table, the per-z-bin table, the predictions."""
    import pandas as pd

    client.log_batch(run_id, metrics=_metrics(evaluation.metrics))
    client.log_metric(run_id, "n_holdout", float(len(evaluation.z_true)))
    table = pd.DataFrame(
        [
            {
                "model": evaluation.name,
                "variant": evaluation.variant,
                "n": len(evaluation.z_true),
                **evaluation.metrics,
            }
        ]
    )
    client.log_table(run_id, table, "metrics/metric_table.json")
    client.log_table(run_id, evaluation.per_bin, "metrics/per_z_bin.json")
    predictions = pd.DataFrame(
        {"objid": evaluation.objid, "z_spec": evaluation.z_true, "z_pred": evaluation.z_pred}
    )
    _log_frame_csv(client, run_id, predictions, "predictions/holdout.csv")


def _metrics(values: Mapping[str, float]) -> list[Any]:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(name, float(values[name]), now, 0) for name in METRIC_NAMES if name in values]


def _log_frame_csv(client: MlflowClient, run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(artifact_file).parent))


def _log_json(client: MlflowClient, run_id: str, payload: Any, artifact_file: str) -> None:
    client.log_dict(run_id, payload, artifact_file)


def _log_keras_model(model: keras.Model, input_example: Any, variant: str) -> Any:
    """The Keras model with its signature (raw cutouts in, redshift out) and a few real cutouts as example.

    The TensorFlow flavor, which saves Keras 3 models as ``.keras``: MLflow 3.17's Keras flavor fails with an
    input example (mlflow/mlflow#16183, open). Pip requirements are given, not inferred: inference loads
    the model in a subprocess and costs seconds.
    """
    import keras as keras_module
    import mlflow
    import mlflow.tensorflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,), "redshift")]),
    )
    return mlflow.tensorflow.log_model(
        model,
        name=MODEL_ARTIFACT_NAME,
        signature=signature,
        input_example=np.asarray(input_example, dtype=np.float32),
        pip_requirements=[
            f"keras=={keras_module.__version__}",
            f"tensorflow=={tf.__version__}",
            f"mlflow=={mlflow.__version__}",
        ],
        metadata={
            "variant": variant,
            "input": "raw ugriz cutouts (N, 32, 32, 5), nanomaggies",
            "custom_objects": "astrospect.model",
        },
    )


def _finished_child(
    client: MlflowClient, parent: Run, *, role: str, variant: str | None = None, run_name: str | None = None
) -> Run | None:
    runs = _children(client, parent, role=role, variant=variant, run_name=run_name, status="FINISHED")
    return runs[0] if runs else None


def _fail_unfinished_children(
    client: MlflowClient, parent: Run, *, role: str, variant: str | None = None, run_name: str | None = None
) -> None:
    for run in _children(client, parent, role=role, variant=variant, run_name=run_name, status="RUNNING"):
        log.warning(
            "run %s (%s) was left RUNNING by an earlier attempt; marking it FAILED",
            run.info.run_id,
            run.info.run_name,
        )
        client.set_terminated(run.info.run_id, status="FAILED")


def _children(
    client: MlflowClient,
    parent: Run,
    *,
    role: str,
    status: str,
    variant: str | None = None,
    run_name: str | None = None,
) -> list[Run]:
    clauses = [
        f"tags.{TAG_PARENT} = '{parent.info.run_id}'",
        f"tags.`{TAG_ROLE}` = '{role}'",
        f"attributes.status = '{status}'",
    ]
    if variant is not None:
        clauses.append(f"tags.{TAG_VARIANT} = '{_quoted(variant)}'")
    if run_name is not None:
        clauses.append(f"attributes.run_name = '{_quoted(run_name)}'")
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=["attributes.start_time ASC"],
        )
    )


def _version_of_run(client: MlflowClient, model_name: str, run_id: str) -> ModelVersion | None:
    versions = client.search_model_versions(f"name = '{_quoted(model_name)}' and run_id = '{run_id}'")
    return max(versions, key=lambda v: int(v.version)) if versions else None
