"""The learning curve's points on disk: each one a JSON file written once, with what it was measured on.

``OUT/points/<challenger>-<n_train>.json`` holds a :class:`CurvePoint` with the data's digest, the holdout's
size and the recipe's epochs and seed, so that a later run with the same ``OUT`` can reuse it instead of
retraining, and a point measured on other data is refused by name, never mixed into a table
(:mod:`astrospect.models.learning_curve` runs the study).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from astrospect.atomic import write_once
from astrospect.data.clipping import UNCLIPPED
from astrospect.data.dataset import ShardLabels, splits_from_labels

POINTS_FOLDER = "points"  # OUT/points/<challenger>-<n_train>.json


@dataclass
class CurvePoint:
    """One challenger trained on ``n_train`` galaxies and scored on the holdout."""

    challenger: str
    n_train: int
    sigma_mad: float
    outlier_frac_005: float
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    crps: float | None = None  # for a challenger that gives PDFs
    val_sigma_mad: float | None = None  # on the validation split: what chooses the best CNN and code
    family: str | None = None  # the registry's model_family: "cnn", "code" or "null"
    clipping: str | None = None  # the training clipping; validation is clipped with it, the holdout never


@dataclass(frozen=True)
class CurveData:
    """What a study measures on: a digest of its shards (names, sizes, every label) and its holdout size."""

    digest: str
    shards: tuple[tuple[str, int], ...]  # (file name, bytes), in the order given
    holdout_size: int


@dataclass(frozen=True)
class CurveSetup:
    """How a point was trained: the settings that make two runs' points the same measurement."""

    epochs: int
    seed: int


class PointMismatchError(ValueError):
    """A point file in OUT was measured on other data, or with another setup, than this run."""


def describe_data(labels: Sequence[ShardLabels]) -> CurveData:
    """The digest of a snapshot as the curve sees it: each shard's name and size, and every objid and
    redshift (what decides the splits and the scores), hashed in shard order. Reading the labels is a
    pass the curve makes anyway; hashing the pixels would read the whole snapshot once more."""
    digest = hashlib.sha256()
    names = []
    for shard in labels:
        size = shard.shard.stat().st_size
        names.append((shard.shard.name, size))
        digest.update(f"{shard.shard.name}\0{size}\0{len(shard.objid)}\0".encode())
        digest.update(np.ascontiguousarray(shard.objid, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(shard.redshift, dtype="<f4").tobytes())
    holdout = splits_from_labels(labels, UNCLIPPED).holdout
    return CurveData(digest.hexdigest(), tuple(names), len(holdout))


def point_path(out: Path, challenger: str, n_train: int) -> Path:
    return out / POINTS_FOLDER / f"{challenger}-{n_train}.json"


def write_point(out: Path, point: CurvePoint, data: CurveData, setup: CurveSetup) -> Path:
    """``OUT/points/<challenger>-<n_train>.json``: the point, its data and its setup; never over another."""
    path = point_path(out, point.challenger, point.n_train)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **asdict(point),
        "data_digest": data.digest,
        "shards": [list(shard) for shard in data.shards],
        "holdout_size": data.holdout_size,
        "epochs": setup.epochs,
        "seed": setup.seed,
        "written": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    if not write_once(path, (json.dumps(document, indent=1, default=str) + "\n").encode()):
        raise FileExistsError(f"{path}: a point is already written there")
    return path


def read_point(path: Path, data: CurveData, setup: CurveSetup | None = None) -> CurvePoint:
    """The point in ``path``, checked against this run's data (and, where given, its setup): a file from
    other data, or with a field missing, raises :class:`PointMismatchError` naming the file and the field."""
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PointMismatchError(f"{path}: not a learning-curve point file ({error})") from error
    if not isinstance(document, dict):
        raise PointMismatchError(f"{path}: not a learning-curve point file (a JSON object expected)")
    expected: dict[str, object] = {"data_digest": data.digest, "holdout_size": data.holdout_size}
    if setup is not None:
        expected |= {"epochs": setup.epochs, "seed": setup.seed}
    for key, value in expected.items():
        if key not in document:
            raise PointMismatchError(f"{path}: field {key!r} is missing; it was not written by this study")
        if document[key] != value:
            hint = (
                "it was measured on other data (shards there: "
                + ", ".join(f"{name} ({size} B)" for name, size in document.get("shards", []))
                + ")"
                if key in ("data_digest", "holdout_size")
                else "it was trained with another setup"
            )
            raise PointMismatchError(
                f"{path}: field {key!r} is {document[key]!r}, this run's is {value!r}: {hint}; "
                "use another --out, or move the file away to retrain that point"
            )
    names = {f.name for f in fields(CurvePoint)}
    required = {f.name for f in fields(CurvePoint) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(document))
    if missing:
        raise PointMismatchError(f"{path}: field {missing[0]!r} is missing")
    return CurvePoint(**{key: value for key, value in document.items() if key in names})


def read_points(out: Path, data: CurveData) -> list[CurvePoint]:
    """Every point in ``OUT/points``, each checked to be from ``data``, in (size, file name) order."""
    folder = out / POINTS_FOLDER
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return sorted((read_point(path, data) for path in paths), key=lambda p: (p.n_train, p.challenger))
