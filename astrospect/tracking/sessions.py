"""Training sessions: one parent run per session, its challengers' child runs, and the UI's URLs.

The MLflow 3.17 UI opens an experiment on the GenAI overview unless the URL says
``workflowType=machine_learning`` (read by its WorkflowTypeProvider; the experiment tag
``mlflow.experimentKind`` is only consulted when that feature flag is off). The experiment carries both,
and every URL printed here carries the parameter, so a user lands on the runs table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.parse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrospect.models import registry as challengers
from astrospect.models.registry import Challenger
from astrospect.settings import PROJECT_ROOT, Settings, get_logger, load_settings
from astrospect.tracking.server import check_tracking_server, client_for
from astrospect.tracking.tags import (
    ROLE_SESSION,
    TAG_AIRFLOW_RUN_ID,
    TAG_CHALLENGER,
    TAG_DATASET_VERSION,
    TAG_GIT_COMMIT,
    TAG_NOTE,
    TAG_PARENT,
    TAG_ROLE,
    ChildRun,
    quoted,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = get_logger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # shown as "Machine learning" in the UI
UI_WORKFLOW_QUERY = "workflowType=machine_learning"


@dataclass(frozen=True)
class Session:
    """A training session's parent run."""

    run_id: str
    name: str
    experiment_id: str
    dataset_version: str | None
    airflow_run_id: str | None

    @classmethod
    def from_run(cls, run: Run) -> Session:
        tags = run.data.tags
        return cls(
            str(run.info.run_id),
            str(run.info.run_name),
            str(run.info.experiment_id),
            tags.get(TAG_DATASET_VERSION),
            tags.get(TAG_AIRFLOW_RUN_ID),
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
            "are the challengers it trained (tag `challenger`): the seed CNN on the `full` and `clipped` "
            "sets, and the baselines. Select a parent's children and press Compare to see the metric "
            "tables side by side."
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
            filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_SESSION}' and tags.{TAG_AIRFLOW_RUN_ID} = '{quoted(airflow_run_id)}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if existing:
            run = existing[0]
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
            log.info("session for Airflow run %s: reusing parent run %s", airflow_run_id, run.info.run_id)
            return str(run.info.run_id)
    tags = context_tags(dataset_version, airflow_run_id) | {TAG_ROLE: ROLE_SESSION}
    run_name = f"nightly {airflow_run_id}" if airflow_run_id else f"session {_utc_stamp()}"
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    client.log_param(run_id, "dataset_version", dataset_version)
    client.log_param(run_id, "n_shards", len(shards))
    client.log_inputs(run_id, datasets=[dataset_input(dataset_version, shards)])
    client.log_dict(
        run_id,
        {"dataset_version": dataset_version, "shards": [str(s) for s in shards]},
        "dataset/shards.json",
    )
    log.info(
        "session %s: parent run %s in experiment %s (%d shards)", run_name, run_id, experiment_id, len(shards)
    )
    return run_id


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


def session_for_dataset(
    settings: Settings, dataset_version: str, trained: Sequence[Challenger]
) -> str | None:
    """The newest session that finished every one of the ``trained`` challengers on ``dataset_version``.

    The DAG's short-circuit: a dataset version already trained by the session's challengers is not trained
    again (unless forced). The caller passes the session's challengers, so a challenger added to the
    session makes the next night train again instead of skipping it without a word.
    """
    client = client_for(settings)
    wanted = {challenger.name for challenger in trained}
    for session in _sessions_newest_first(
        client, settings, f" and tags.{TAG_DATASET_VERSION} = '{quoted(dataset_version)}'"
    ):
        finished = {
            run.data.tags.get(TAG_CHALLENGER) for run in child_runs(client, session, status="FINISHED")
        }
        if wanted <= finished:
            return str(session.info.run_id)
    return None


def session_children(settings: Settings, parent_run_id: str) -> list[ChildRun]:
    """The session's FINISHED challenger runs: registered ones first, then baselines, in registry order."""
    client = client_for(settings)
    children = [
        ChildRun.from_run(run)
        for run in child_runs(client, client.get_run(parent_run_id), "FINISHED")
        if TAG_CHALLENGER in run.data.tags  # other children (a drift report) are not challengers
    ]
    order = {challenger.name: index for index, challenger in enumerate(challengers.registered())}
    return sorted(children, key=lambda c: (c.baseline, order.get(c.challenger, len(order)), c.challenger))


def latest_session(settings: Settings) -> Session | None:
    """The most recent session that has at least one finished child, or None."""
    for run in _sessions_newest_first(client_for(settings), settings, max_results=20):
        if session_children(settings, run.info.run_id):
            return Session.from_run(run)
    return None


def get_session(settings: Settings, parent_run_id: str) -> Session:
    return Session.from_run(client_for(settings).get_run(parent_run_id))


def child_runs(client: MlflowClient, parent: Run, status: str, challenger: str | None = None) -> list[Run]:
    """The parent's child runs in ``status`` (optionally of one challenger), oldest first."""
    clauses = [f"tags.{TAG_PARENT} = '{parent.info.run_id}'", f"attributes.status = '{status}'"]
    if challenger is not None:
        clauses.append(f"tags.{TAG_CHALLENGER} = '{quoted(challenger)}'")
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=["attributes.start_time ASC"],
            max_results=1000,
        )
    )


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


# --- the UI's URLs ---------------------------------------------------------------------------------------


def experiment_url(settings: Settings) -> str:
    """The experiment's runs table in the UI (the machine-learning view, not the GenAI overview)."""
    experiment_id = ensure_experiment(settings)
    return f"{settings.mlflow_ui_url}/#/experiments/{experiment_id}/runs?{UI_WORKFLOW_QUERY}"


def compare_url(parent_run_id: str, settings: Settings) -> str:
    """The UI's compare view of a session's finished children (registered challengers, then baselines)."""
    children = session_children(settings, parent_run_id)
    if not children:
        raise LookupError(f"parent run {parent_run_id} has no finished child runs to compare")
    run_ids = [child.run_id for child in children]
    experiment_ids = sorted({child.experiment_id for child in children})
    return compare_url_for(settings.mlflow_ui_url, run_ids, experiment_ids)


def compare_url_for(base_url: str, run_ids: Sequence[str], experiment_ids: Sequence[str]) -> str:
    """``<base>/#/compare-runs?runs=[...]&experiments=[...]``, the JSON lists percent-encoded."""

    def encoded(values: Sequence[str]) -> str:
        return urllib.parse.quote(json.dumps(list(values), separators=(",", ":")), safe="")

    return f"{base_url.rstrip('/')}/#/compare-runs?runs={encoded(run_ids)}&experiments={encoded(experiment_ids)}&{UI_WORKFLOW_QUERY}"


# --- what every run says about where it came from ------------------------------------------------------


def git_commit() -> str:
    """The checkout's commit (``-dirty`` when it has uncommitted changes); ``ASTROSPECT_GIT_COMMIT`` in images."""
    recorded = load_settings().git_commit
    if recorded is not None:
        return recorded
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


def context_tags(dataset_version: str, airflow_run_id: str | None) -> dict[str, str]:
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


def dataset_input(dataset_version: str, shards: Sequence[Path | str]) -> Any:
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


def _utc_stamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
