"""Drift monitoring: are tonight's cutouts, and the champion's predictions on them, like its training data?

``measure_drift(settings, tonight_shards, reference, model)`` returns a :class:`DriftReport`; the
pieces are :mod:`.features` (per-cutout features), :mod:`.statistics` (per-feature tests and distances),
:mod:`.measure` (the reference cache, tonight's shards, the step), :mod:`.report` (table, JSON, HTML) and
:mod:`.runs` (the report as an MLflow run).
"""

from __future__ import annotations

from astrospect.drift.measure import WatchedModel, champion_model, compare, measure_drift, tonight_of
from astrospect.drift.report import DriftReport

__all__ = ["DriftReport", "WatchedModel", "champion_model", "compare", "measure_drift", "tonight_of"]
