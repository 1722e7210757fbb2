"""Driving RAIL 2.x stages from Python, without a ceci pipeline, and reading their qp ensembles.

A stage is made with its class's ``make_stage(name=..., **config)``; an informer's ``inform(table)``
returns a model handle, which an estimator takes as its ``model`` and whose ``estimate(table)`` returns a
qp handle. ``output_mode="return"`` keeps everything in memory: no model or PDF file is written. Each
stage holds its own DataStore (pz-rail-base 2.0.11), so stages of concurrent fits do not collide.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs

_STAGE_NUMBERS = itertools.count(1)


class RailStageError(RuntimeError):
    """A RAIL stage failed; the message names the stage (and the challenger), the cause is chained."""

    def __init__(self, stage: str, challenger: str, cause: BaseException) -> None:
        self.stage = stage
        self.challenger = challenger
        super().__init__(
            f"challenger {challenger!r}: RAIL stage {stage} failed: {type(cause).__name__}: {cause}"
        )


def stage_class(path: str) -> Any:
    """The stage class at ``"module:ClassName"`` (imported on use: RAIL is an optional extra)."""
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"RAIL stage {path} is not installed: the field's codes need the `rail` extra "
            "(`uv sync --extra rail`, which `make setup` runs)"
        ) from error
    return getattr(module, class_name)


def _make(path: str, challenger: str, config: Mapping[str, Any]) -> tuple[str, Any]:
    cls = stage_class(path)
    # A fresh instance name per stage: a name is the key of its handles.
    name = f"{challenger.replace('-', '_')}_{cls.__name__}_{next(_STAGE_NUMBERS)}"
    stage = cls.make_stage(name=name, output_mode="return", hdf5_groupname="", **config)
    return cls.__name__, stage


def inform(path: str, challenger: str, table: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    """Run the informer at ``path`` on ``table``; its model handle (what an estimator's ``model`` takes)."""
    stage_name, stage = _make(path, challenger, {"model": f"{challenger}_model.pkl", **config})
    try:
        return stage.inform(dict(table))
    except Exception as error:  # only the RAIL call; re-raised naming the stage, the cause chained
        raise RailStageError(stage_name, challenger, error) from error


def estimate(
    path: str, challenger: str, model: Any, table: Mapping[str, Any], config: Mapping[str, Any]
) -> Any:
    """Run the estimator at ``path`` with ``model`` on ``table``; its qp.Ensemble, one row per galaxy."""
    stage_name, stage = _make(path, challenger, {"model": model, **config})
    # Stages change their input columns in place (non-detections, zero points): give them a copy.
    copied = {name: np.array(values, copy=True) for name, values in table.items()}
    try:
        ensemble = stage.estimate(copied).data
    except Exception as error:  # only the RAIL call; re-raised naming the stage, the cause chained
        raise RailStageError(stage_name, challenger, error) from error
    n_rows = len(next(iter(table.values())))
    if ensemble.npdf != n_rows:
        raise RailStageError(
            stage_name, challenger, ValueError(f"returned {ensemble.npdf} PDFs for {n_rows} galaxies")
        )
    return ensemble


def ensemble_pdfs(
    ensemble: Any, bins: RedshiftBins, no_answer: npt.NDArray[np.float64] | None = None
) -> RedshiftPdfs:
    """The probabilities of a qp.Ensemble (any parameterisation) in ``bins``: differences of its CDF at the
    bin edges, with the mass below the first edge in the first bin and above the last in the last bin
    (the system's convention for outliers, as :meth:`RedshiftBins.histogram`).

    A row whose CDF is not finite is a galaxy the code gave no answer for (DNF, for one, on a galaxy whose
    neighbours leave its fit undefined). With ``no_answer`` (probabilities over ``bins``) such a row takes
    it, and :func:`unanswered_rows` says which they were; without it, they are an error."""
    return pdfs_from_cdf(ensemble_cdf(ensemble, bins), bins, no_answer)


def ensemble_cdf(ensemble: Any, bins: RedshiftBins) -> npt.NDArray[np.float64]:
    """The qp.Ensemble's CDF at the edges of ``bins``, (N, bins.n + 1)."""
    return np.asarray(ensemble.cdf(bins.edge_array), dtype=np.float64).reshape(ensemble.npdf, bins.n + 1)


def pdfs_from_cdf(
    cdf: npt.NDArray[np.float64], bins: RedshiftBins, no_answer: npt.NDArray[np.float64] | None = None
) -> RedshiftPdfs:
    """:func:`ensemble_pdfs` from a CDF already evaluated at the bin edges (left as it is)."""
    cdf = cdf.copy()
    rows = unanswered_rows(cdf)
    if rows.size:
        if no_answer is None:
            raise ValueError(
                f"the qp ensemble's CDF is not finite for {rows.size} galaxies (first rows {rows[:5]})"
            )
        cdf[rows] = np.concatenate([[0.0], np.cumsum(no_answer)])
    probabilities = np.clip(np.diff(cdf, axis=1), 0.0, None)
    probabilities[:, 0] += np.clip(cdf[:, 0], 0.0, 1.0)
    probabilities[:, -1] += np.clip(1.0 - cdf[:, -1], 0.0, 1.0)
    total = probabilities.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError(f"{int(np.sum(total <= 0))} PDFs of the qp ensemble have no mass in the bins")
    return RedshiftPdfs(probabilities / total, bins)


def unanswered_rows(values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The rows (galaxies) of ``values`` (N, ...) with any value that is not finite."""
    return np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))


def ensemble_point(ensemble: Any, key: str) -> np.ndarray:
    """The point redshift the estimator stored in the ensemble's ancillary data under ``key``, (N,)."""
    ancil = ensemble.ancil or {}
    if key not in ancil:
        raise KeyError(f"the qp ensemble has no {key!r} point estimate; it has {sorted(ancil)}")
    return np.asarray(ancil[key], dtype=np.float64).reshape(-1)
