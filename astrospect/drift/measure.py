"""The drift step: tonight's accepted cutouts against the reference snapshot, features and predictions.

``measure_drift(settings, tonight_shards, reference, model)`` is what the nightly step calls. Tonight is
the shards accepted in the newest snapshot that the reference does not hold (:func:`tonight_of`); the
reference is the champion's training snapshot (or one the caller names).

Cost: the reference is the big side (the champion's whole training set), and it does not change from
night to night. Its features are computed once per snapshot version and its predictions once per
(snapshot version, model version), then read from ``<home>/drift-cache/`` (written once, never replaced);
a night then reads only its own new cutouts, once, for features and predictions together.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from astrospect.data.store import local_copies
from astrospect.drift.features import (
    DATA_FEATURES,
    FEATURES_VERSION,
    LABEL,
    PREDICTION,
    Predictor,
    shard_features,
)
from astrospect.drift.report import DriftReport
from astrospect.drift.statistics import FeatureDrift, compare_feature
from astrospect.faults import EnvironmentFault
from astrospect.gate.snapshot import Snapshot
from astrospect.settings import Settings, get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class WatchedModel:
    """A model whose predicted N(z) is watched: ``predict`` maps channels-last cutouts to redshifts;
    ``version`` names its predictions in the cache (e.g. the registry version and run id)."""

    version: str
    predict: Predictor


def tonight_of(newest: Snapshot, reference: Snapshot) -> tuple[list[str], list[str]]:
    """The shards (and their sha256) of ``newest`` that ``reference`` does not hold, in manifest order."""
    held = set(reference.sha256)
    pairs = [(shard, sha) for shard, sha in zip(newest.shards, newest.sha256, strict=True) if sha not in held]
    return [shard for shard, _ in pairs], [sha for _, sha in pairs]


def compare(reference: pd.DataFrame, tonight: pd.DataFrame, alpha: float) -> list[FeatureDrift]:
    """Every feature both tables have, data first, then the label, then the prediction; each tested at
    ``alpha / n_features`` (Bonferroni)."""
    kinds = {name: "data" for name in DATA_FEATURES} | {LABEL: "label", PREDICTION: "prediction"}
    names = [name for name in kinds if name in reference.columns and name in tonight.columns]
    if not names:
        raise ValueError("the reference and tonight's tables share no drift feature")
    per_feature = alpha / len(names)
    return [
        compare_feature(name, kinds[name], reference[name].to_numpy(), tonight[name].to_numpy(), per_feature)
        for name in names
    ]


def measure_drift(
    settings: Settings,
    tonight_shards: Sequence[Path],
    reference: Snapshot,
    model: WatchedModel | None = None,
) -> DriftReport:
    """Compare tonight's cutouts (local shard paths) with the reference snapshot's, and the model's predicted
    N(z) on both when a model is given. Thresholds and the action come from ``settings``."""
    if not tonight_shards:
        raise ValueError(f"no shards tonight: nothing to compare with snapshot {reference.version}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reference_table, from_cache = reference_features(settings, reference, model)
    seconds["reference"] = time.perf_counter() - started

    started = time.perf_counter()
    tonight = shard_features(list(tonight_shards), predict=model.predict if model else None)
    seconds["tonight"] = time.perf_counter() - started

    started = time.perf_counter()
    features = compare(reference_table, tonight, settings.drift_alpha)
    seconds["tests"] = time.perf_counter() - started
    report = DriftReport(
        reference_version=reference.version,
        tonight_shards=[Path(shard).name for shard in tonight_shards],
        model_version=model.version if model else None,
        features=features,
        alpha=settings.drift_alpha,
        share_threshold=settings.drift_share,
        action=settings.drift_action,
        seconds={name: round(value, 3) for name, value in seconds.items()},
        from_cache=from_cache,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    log.info(
        "drift: %s (%d of %d features drifted: %s) for %d cutouts tonight against %d of snapshot %s in %.1f s",
        "DRIFTING" if report.drifting else "no drift",
        len(report.drifted_features),
        len(features),
        ", ".join(report.drifted_features) or "none",
        report.n_tonight,
        report.n_reference,
        reference.version[:12],
        sum(seconds.values()),
    )
    return report


# -- the reference, computed once -----------------------------------------------------------------------------
def reference_features(
    settings: Settings, reference: Snapshot, model: WatchedModel | None
) -> tuple[pd.DataFrame, dict[str, bool]]:
    """The reference's feature table (and ``z_pred`` column with a model), from the cache where it is;
    whatever is missing is computed in one pass over the reference's pixels and cached."""
    folder = settings.drift_cache_dir
    features_path = folder / f"{reference.version}-features-v{FEATURES_VERSION}.npz"
    predictions_path = (
        folder / f"{reference.version}-predictions-{_safe(model.version)}.npz" if model else None
    )
    features = _read_table(features_path)
    predictions = _read_table(predictions_path) if predictions_path else None
    need_predictions = model is not None and predictions is None
    from_cache = {"features": features is not None} | ({"predictions": not need_predictions} if model else {})
    if features is None or need_predictions:
        started = time.perf_counter()
        shards = local_copies(reference.shards, reference.sha256, settings)
        computed = shard_features(
            shards, data=features is None, predict=model.predict if model and need_predictions else None
        )
        log.info(
            "drift: reference %s (%d cutouts): %s computed in %.1f s, cached in %s",
            reference.version[:12],
            len(computed),
            " and ".join(
                part
                for part, needed in (("features", features is None), ("predictions", need_predictions))
                if needed
            ),
            time.perf_counter() - started,
            folder,
        )
        if features is None:
            features = computed.drop(columns=[PREDICTION], errors="ignore")
            _write_table_once(features_path, features)
        if need_predictions and predictions_path is not None:
            predictions = computed[[PREDICTION]]
            _write_table_once(predictions_path, predictions)
    table = features
    if predictions is not None:
        if len(predictions) != len(features):
            raise ValueError(
                f"{predictions_path}: {len(predictions)} predictions for {len(features)} reference cutouts"
            )
        table = pd.concat([features, predictions], axis=1)
    return table, from_cache


def _safe(version: str) -> str:
    """A model version as a file name part; a digest keeps distinct versions distinct."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", version)[:60]
    return f"{readable}-{hashlib.sha256(version.encode()).hexdigest()[:12]}"


def _read_table(path: Path | None) -> pd.DataFrame | None:
    if path is None or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        return pd.DataFrame({name: stored[name] for name in stored.files})


def _write_table_once(path: Path, table: pd.DataFrame) -> None:
    """Write atomically; an existing file is never replaced (its name is its content's key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        columns: dict[str, Any] = {str(name): table[name].to_numpy() for name in table.columns}
        np.savez(temp, **columns)
        os.link(temp, path)
    except FileExistsError:
        pass  # a concurrent run cached the same key first: same snapshot, same code, same values
    finally:
        temp.unlink()


# -- the champion ------------------------------------------------------------------------------------------
def champion_model(settings: Settings) -> tuple[WatchedModel, str | None]:
    """The registry's champion as a watched model, and the dataset version it was trained on.

    Raises :class:`~astrospect.tracking.server.TrackingServerError` when no MLflow server answers (an
    environment fault: :func:`drift_against` fails) and :class:`LookupError` when the registry has no champion
    (the first night: a skip).
    """
    from astrospect.models.predict import point_redshift
    from astrospect.tracking.registry import load_model, read_champion

    champion = read_champion(settings)
    keras_model = load_model(settings, champion.version)
    # Either kind of champion: a PDF model's watched redshift is its PDF's point estimate, what it serves.
    predict: Callable[[np.ndarray], np.ndarray] = lambda images: point_redshift(keras_model, images)  # noqa: E731
    version = f"{champion.registered_model}-v{champion.version}-{champion.run_id[:12]}"
    return WatchedModel(version, predict), champion.dataset_version


def drift_against(
    settings: Settings, against: str | None = None, newest: str = "latest"
) -> tuple[DriftReport | None, Snapshot, Snapshot]:
    """``astrospect drift``: the shards of snapshot ``newest`` that the reference does not hold, against it.

    The reference is ``against`` (a version, unique prefix or manifest path) or else the champion's
    training snapshot; the champion, when the registry has one, is the watched model either way. Returns
    no report when ``newest`` holds nothing the reference does not.
    """
    from astrospect.gate.snapshot import load_manifest
    from astrospect.tracking.server import TrackingServerError

    model: WatchedModel | None = None
    trained_on: str | None = None
    try:
        model, trained_on = champion_model(settings)
    except TrackingServerError as error:
        # Not "no champion": nobody could ask. Without a reference named (the nightly step) that is the step's
        # failure, which Airflow retries; with one, a person asked for the data drift against it.
        if against is None:
            raise EnvironmentFault(
                f"the MLflow tracking server {settings.mlflow_tracking_uri}", error
            ) from error
        log.warning("drift: no champion (%s): data drift only, no prediction drift", error)
    except LookupError as error:  # the registry answered: no champion yet (the first night)
        if against is None:
            raise LookupError(
                f"no champion to compare with ({error}); name a reference with --against"
            ) from error
        log.warning("drift: no champion (%s): data drift only, no prediction drift", error)
    if against is None and trained_on is None:
        raise LookupError("the champion's run records no dataset_version; name a reference with --against")
    reference = load_manifest(against or str(trained_on), settings)
    tonight = load_manifest(newest, settings)
    shards, sha256s = tonight_of(tonight, reference)
    if not shards:
        log.info(
            "drift: snapshot %s holds no shard that %s does not", tonight.version[:12], reference.version[:12]
        )
        return None, tonight, reference
    return (
        measure_drift(settings, local_copies(shards, sha256s, settings), reference, model),
        tonight,
        reference,
    )
