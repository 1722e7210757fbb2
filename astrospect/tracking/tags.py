"""The tag vocabulary of runs and registered versions, and the typed views decoded from them.

Only this module reads raw tags: the report, promotion and the sessions module get :class:`ChildRun` and
:class:`~astrospect.tracking.registry.RegisteredVersion` views instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from astrospect.models.registry import Challenger

if TYPE_CHECKING:
    from mlflow.entities import Run

TAG_CHALLENGER = "challenger"  # the challenger's name: the tag a user filters on in the UI
TAG_ROLE = "astrospect.role"  # ROLE_SESSION (parent), ROLE_CNN, ROLE_BASELINE or ROLE_DRIFT (children)
TAG_CLIPPING = "astrospect.clipping"  # which galaxies the challenger trained on
TAG_OUTPUT = "astrospect.output"  # "point" or "pdf"
TAG_DATASET_VERSION = "dataset_version"
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_GIT_COMMIT = "git_commit"
TAG_MODEL_VERSION = "model_version"  # on a registered child: its version number
TAG_SESSION_RUN_ID = "session_run_id"  # on a registered version: the session that trained it
TAG_PARENT = "mlflow.parentRunId"
TAG_NOTE = "mlflow.note.content"
TAG_DRIFTING = "drift.drifting"  # on a drift run: "true" or "false"
TAG_ERROR = "astrospect.error"  # on a FAILED child: what ended its training ("<type>: <message>")
TAG_SUPERSEDED_BY = "astrospect.superseded_by"  # on a failed attempt's child: the run of the retry after it
ROLE_SESSION, ROLE_CNN, ROLE_BASELINE = "session", "cnn", "baseline"
ROLE_DRIFT = "drift"  # a night's drift report: a session's child when the night trains


def role_of(challenger: Challenger) -> str:
    return ROLE_BASELINE if challenger.baseline else ROLE_CNN


def challenger_tags(challenger: Challenger) -> dict[str, str]:
    """What a child run (and a registered version) says about the challenger it holds."""
    return {
        TAG_CHALLENGER: challenger.name,
        TAG_ROLE: role_of(challenger),
        TAG_CLIPPING: challenger.clipping,
        TAG_OUTPUT: challenger.output,
    }


@dataclass(frozen=True)
class ChildRun:
    """A session's finished child run, as the report, promotion and the compare view see it."""

    run_id: str
    experiment_id: str
    challenger: str
    role: str
    clipping: str
    output: str
    model_version: str | None  # None for a baseline
    metrics: dict[str, float]

    @property
    def baseline(self) -> bool:
        return self.role == ROLE_BASELINE

    @classmethod
    def from_run(cls, run: Run) -> ChildRun:
        tags = run.data.tags
        missing = [tag for tag in (TAG_CHALLENGER, TAG_ROLE) if tag not in tags]
        if missing:
            raise ValueError(f"run {run.info.run_id} ({run.info.run_name}): tag(s) {missing} missing")
        return cls(
            run_id=str(run.info.run_id),
            experiment_id=str(run.info.experiment_id),
            challenger=tags[TAG_CHALLENGER],
            role=tags[TAG_ROLE],
            clipping=tags.get(TAG_CLIPPING, ""),
            output=tags.get(TAG_OUTPUT, "point"),
            model_version=tags.get(TAG_MODEL_VERSION),
            metrics={str(k): float(v) for k, v in run.data.metrics.items()},
        )


def quoted(value: str) -> str:
    """A value for an MLflow search filter's single-quoted string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
