"""One challenger's child run: trained once per session, logged with everything a person compares.

:func:`train_once` is where idempotency lives: a retried Airflow task finds the challenger's FINISHED
child and returns it without training again; a child left RUNNING by a killed attempt is marked FAILED, and
it and a FAILED one are kept (with the curve they reached) and tagged with the fresh run that replaces them.
The child run lives as long as its training (:mod:`astrospect.tracking.live`); the holdout evaluation is
logged on it after the last epoch, and a challenger that is not a baseline becomes a registered version
from it (:mod:`astrospect.tracking.registry`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrospect.data.metrics import METRIC_NAMES
from astrospect.models.registry import Challenger
from astrospect.settings import CUTOUT_SIZE, N_BANDS, Settings, get_logger
from astrospect.tracking import registry
from astrospect.tracking.live import curve_name, live_run
from astrospect.tracking.server import client_for
from astrospect.tracking.sessions import child_runs, context_tags, dataset_input
from astrospect.tracking.tags import (
    TAG_AIRFLOW_RUN_ID,
    TAG_DATASET_VERSION,
    TAG_ERROR,
    TAG_MODEL_VERSION,
    TAG_PARENT,
    TAG_SUPERSEDED_BY,
    challenger_tags,
)

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from astrospect.models.evaluate import Evaluation
    from astrospect.models.pipeline import ChallengerOutcome
    from astrospect.pdf.bins import RedshiftBins

log = get_logger(__name__)
MODEL_ARTIFACT_NAME = "model"
_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


@dataclass(frozen=True)
class LoggedRun:
    """A challenger's finished child run, and the registered version it became (None for a baseline)."""

    run_id: str
    challenger: str
    model_version: str | None
    model_uri: str | None  # models:/<name>/<version>
    reused: bool = False  # True when a retried call found the run already logged

    def summary(self) -> dict[str, Any]:
        """JSON-able, for Airflow's XCom."""
        return asdict(self)


def train_once(
    settings: Settings,
    parent_run_id: str,
    challenger: Challenger,
    produce: Callable[[], ChallengerOutcome],
    shards: Sequence[Path | str] = (),
) -> LoggedRun:
    """Train ``challenger`` inside its own child run of the session, unless a finished one is there.

    ``produce`` trains and scores the challenger; it is called only when the session has no FINISHED child
    for it, so a retried task never trains twice. The child run is created first (tags, the dataset as its
    input), ``produce`` runs inside it (:func:`astrospect.tracking.live.live_run`: parameters, per-epoch
    curves and system metrics logged as they come), then the holdout metrics, plots and model are logged
    and the model registered from that run. Runs of earlier attempts that did not finish (RUNNING: a killed
    worker; FAILED: an exception) are kept with their partial curves, tagged with the run that replaced them.
    """
    client = client_for(settings)
    parent = client.get_run(parent_run_id)
    finished = child_runs(client, parent, "FINISHED", challenger.name)
    if finished:
        logged = _logged(settings, finished[0], challenger, reused=True)
        log.info(
            "%s already trained in run %s (model version %s); not training again",
            challenger.name,
            logged.run_id,
            logged.model_version,
        )
        return logged
    earlier = [
        run
        for status in ("RUNNING", "FAILED")
        for run in child_runs(client, parent, status, challenger.name)
        if TAG_SUPERSEDED_BY not in run.data.tags
    ]
    run_id = _start_child(client, parent, challenger, shards)
    for stale in earlier:
        _supersede(client, stale, run_id)
    with live_run(settings, client, str(parent.info.experiment_id), run_id) as live:
        outcome = produce()
        if outcome.challenger != challenger:
            raise ValueError(
                f"produced an outcome for {outcome.challenger.name!r}, expected {challenger.name!r}"
            )
        return _log_outcome(settings, client, parent, run_id, outcome, live.logged_points)


def _start_child(
    client: MlflowClient, parent: Run, challenger: Challenger, shards: Sequence[Path | str]
) -> str:
    """The challenger's child run, RUNNING, with its tags, the dataset version and the dataset as input."""
    dataset_version = parent.data.tags.get(TAG_DATASET_VERSION, "unknown")
    tags = context_tags(dataset_version, parent.data.tags.get(TAG_AIRFLOW_RUN_ID)) | {
        TAG_PARENT: str(parent.info.run_id),
        **challenger_tags(challenger),
    }
    run_id = str(
        client.create_run(parent.info.experiment_id, run_name=challenger.name, tags=tags).info.run_id
    )
    _log_params(client, run_id, {"dataset_version": dataset_version})
    if shards:
        client.log_inputs(run_id, datasets=[dataset_input(dataset_version, shards)])
    log.info("%s: training in MLflow run %s", challenger.name, run_id)
    return run_id


def _supersede(client: MlflowClient, stale: Run, run_id: str) -> None:
    """Keep an earlier attempt's run (its partial curves), FAILED, naming the run that replaced it."""
    stale_id = str(stale.info.run_id)
    if stale.info.status == "RUNNING":
        log.warning(
            "run %s (%s) was left RUNNING by an earlier attempt; marking it FAILED",
            stale_id,
            stale.info.run_name,
        )
        client.set_tag(
            stale_id,
            TAG_ERROR,
            "left RUNNING by an attempt that stopped without ending it (a killed worker or a lost task)",
        )
        client.set_terminated(stale_id, status="FAILED")
    client.set_tag(stale_id, TAG_SUPERSEDED_BY, run_id)


def _log_outcome(
    settings: Settings,
    client: MlflowClient,
    parent: Run,
    run_id: str,
    outcome: ChallengerOutcome,
    logged_points: Set[tuple[str, int]],
) -> LoggedRun:
    """After the last epoch, on the same run: every parameter, the curves not already logged live, the
    holdout evaluation and plots, and (not for a baseline) the model, registered from this run."""
    challenger, trained, evaluation = outcome.challenger, outcome.trained, outcome.evaluation
    dataset_version = parent.data.tags.get(TAG_DATASET_VERSION, "unknown")
    version: registry.RegisteredVersion | None = None
    _log_params(client, run_id, {**trained.params, "dataset_version": dataset_version})
    _log_history(client, run_id, trained.history, skip=logged_points)
    for name, value in trained.run_metrics.items():
        client.log_metric(run_id, name, float(value))
    _log_evaluation(client, run_id, challenger, evaluation)
    for plot in outcome.plots:
        client.log_artifact(run_id, str(plot), "plots")
    if not challenger.baseline:
        if trained.keras_model is None or trained.input_example is None:
            raise ValueError(
                f"{challenger.name}: a registered challenger needs a Keras model and an input example"
            )
        model_info = _log_keras_model(trained.keras_model, trained.input_example, challenger, trained.bins)
        version = registry.register(
            settings,
            model_info.model_uri,
            challenger,
            run_id=run_id,
            session_run_id=str(parent.info.run_id),
            dataset_version=dataset_version,
            extra_tags={
                f"holdout.{name}": f"{value:.6g}" for name, value in holdout_metrics(evaluation).items()
            },
        )
        client.set_tag(run_id, TAG_MODEL_VERSION, version.version)
    log.info(
        "logged %s: run %s%s (sigma_mad %.4f, mae %.4f)",
        challenger.name,
        run_id,
        f", model version {version.version}" if version else "",
        evaluation.metrics["sigma_mad"],
        evaluation.metrics["mae"],
    )
    return LoggedRun(
        run_id, challenger.name, version.version if version else None, version.uri if version else None
    )


def log_decision(
    settings: Settings, run_id: str, artifact: str, payload: Mapping[str, Any], verdict: str
) -> bool:
    """Log a promotion decision as a JSON artifact of ``run_id`` and tag the run with the verdict.

    Returns False, logging nothing, when that decision artifact is already there (a re-run of promotion).
    """
    client = client_for(settings)
    folder = str(Path(artifact).parent)
    if artifact in {f.path for f in client.list_artifacts(run_id, folder)}:
        log.info("promotion decision %s was already logged; not logging it again", artifact)
        return False
    client.log_dict(run_id, dict(payload), artifact)
    client.set_tag(run_id, "promotion.decision", verdict)
    return True


def _logged(settings: Settings, run: Run, challenger: Challenger, reused: bool) -> LoggedRun:
    if challenger.baseline:
        return LoggedRun(str(run.info.run_id), challenger.name, None, None, reused)
    version = registry.version_of_run(settings, str(run.info.run_id))
    if version is None:
        raise LookupError(f"{challenger.name}: finished run {run.info.run_id} has no registered version")
    return LoggedRun(str(run.info.run_id), challenger.name, version.version, version.uri, reused)


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    entries = [Param(str(key), "None" if value is None else str(value)) for key, value in params.items()]
    client.log_batch(run_id, params=entries)


def _log_history(
    client: MlflowClient,
    run_id: str,
    history: Mapping[str, Sequence[float]],
    skip: Set[tuple[str, int]] = frozenset(),
) -> None:
    """Per-epoch curves, step = epoch (1-based, as the log lines count); the (metric, step) points in
    ``skip`` are on the run already (logged as their epoch ended)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(curve_name(key), float(value), now, epoch)
        for key, values in history.items()
        for epoch, value in enumerate(values, start=1)
        if (curve_name(key), epoch) not in skip
    ]
    for start in range(0, len(metrics), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])


def holdout_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The point metric table, then the PDF metric table where the model gives PDFs, and the PDF metrics
    before calibration as ``uncalibrated_<name>``."""
    return {
        **{name: float(evaluation.metrics[name]) for name in METRIC_NAMES},
        **evaluation.pdf_metrics,
        **{f"uncalibrated_{name}": value for name, value in evaluation.uncalibrated_pdf_metrics.items()},
    }


def _log_evaluation(
    client: MlflowClient, run_id: str, challenger: Challenger, evaluation: Evaluation
) -> None:
    """The holdout metric table as metrics and as a table, the per-z-bin table, the predictions."""
    import pandas as pd
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = holdout_metrics(evaluation)
    client.log_batch(run_id, metrics=[Metric(name, value, now, 0) for name, value in values.items()])
    client.log_metric(run_id, "n_holdout", float(len(evaluation.z_true)))
    row = {"model": challenger.name, "clipping": challenger.clipping, "n": len(evaluation.z_true), **values}
    table = pd.DataFrame([row])
    client.log_table(run_id, table, "metrics/metric_table.json")
    client.log_table(run_id, evaluation.per_bin, "metrics/per_z_bin.json")
    predictions = pd.DataFrame(
        {"objid": evaluation.objid, "z_spec": evaluation.z_true, "z_pred": evaluation.z_pred}
    )
    _log_frame_csv(client, run_id, predictions, "predictions/holdout.csv")


def _log_frame_csv(client: MlflowClient, run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(artifact_file).parent))


def _log_keras_model(
    model: keras.Model, input_example: Any, challenger: Challenger, bins: RedshiftBins | None
) -> Any:
    """The Keras model with its signature (raw cutouts in; redshift, or probabilities over the redshift
    bins, out) and a few real cutouts as example; a PDF model's bin edges go in its metadata.

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
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    output = (
        TensorSpec(np.dtype(np.float32), (-1,), "redshift")
        if bins is None
        else TensorSpec(np.dtype(np.float32), (-1, bins.n), "redshift_pdf")
    )
    from astrospect.models.cnn import CUTOUTS_INPUT, EBV_INPUT, takes_ebv
    from astrospect.models.predict import model_inputs

    cutouts = TensorSpec(np.dtype(np.float32), (-1, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS))
    inputs: list[ColSpec | TensorSpec] = (
        [
            TensorSpec(cutouts.type, cutouts.shape, CUTOUTS_INPUT),
            TensorSpec(np.dtype(np.float32), (-1,), EBV_INPUT),
        ]
        if takes_ebv(model)
        else [cutouts]
    )
    signature = ModelSignature(inputs=Schema(inputs), outputs=Schema([output]))
    # A model with the E(B-V) input gets its example cutouts at E(B-V) 0 (JSON, which MLflow writes the
    # example in, has no NaN for the "unknown" fallback).
    images = np.asarray(input_example, dtype=np.float32)
    example = model_inputs(model, images, np.zeros(len(images), np.float32))
    pdf_metadata = {} if bins is None else {"redshift_bin_edges": [float(e) for e in bins.edges]}
    return mlflow.tensorflow.log_model(
        model,
        name=MODEL_ARTIFACT_NAME,
        signature=signature,
        input_example=example,
        pip_requirements=[
            f"keras=={keras_module.__version__}",
            f"tensorflow=={tf.__version__}",
            f"mlflow=={mlflow.__version__}",
        ],
        metadata={
            "challenger": challenger.name,
            "clipping": challenger.clipping,
            "output": challenger.output,
            "input": "raw ugriz cutouts (N, 32, 32, 5), nanomaggies"
            + (", and E(B-V) per cutout (N,), NaN where unknown" if takes_ebv(model) else ""),
            "custom_objects": "astrospect.models.cnn",
            **pdf_metadata,
        },
    )
