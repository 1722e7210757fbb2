"""Studies in MLflow: runs that measure the system rather than train tonight's models (the learning curve).

They go to their own experiment, ``<experiment>-studies``, so the nightly sessions, promotion and the report
never see them. One parent run per study holds the table and the figure; each (challenger, size) point is a
child run with its parameters, its holdout sigma_MAD and its per-epoch curves (the validation loss among
them), so the curves of every size and precision can be laid over each other in MLflow's compare view.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrospect.settings import Settings, get_logger
from astrospect.tracking.runs import _log_history, _log_params
from astrospect.tracking.server import check_tracking_server, client_for
from astrospect.tracking.tags import TAG_NOTE, TAG_PARENT, TAG_ROLE

if TYPE_CHECKING:
    from astrospect.models.learning_curve import CurvePoint

log = get_logger(__name__)
ROLE_LEARNING_CURVE = "learning-curve"


def studies_experiment(settings: Settings) -> str:
    """The id of the studies experiment, created on first use."""
    client = client_for(settings)
    name = f"{settings.experiment_name}-studies"
    experiment = client.get_experiment_by_name(name)
    return str(experiment.experiment_id) if experiment else str(client.create_experiment(name))


def log_learning_curve(
    settings: Settings,
    points: Sequence[CurvePoint],
    table: Sequence[Mapping[str, Any]],
    figure: Path,
    params: Mapping[str, Any],
) -> str:
    """One parent run (table, figure, ``params``) with a child per point; returns the parent's id."""
    import pandas as pd

    check_tracking_server(settings.mlflow_tracking_uri)
    client = client_for(settings)
    experiment_id = studies_experiment(settings)
    parent = client.create_run(
        experiment_id,
        run_name="learning curve",
        tags={
            TAG_ROLE: ROLE_LEARNING_CURVE,
            TAG_NOTE: "Holdout sigma_MAD against training galaxies; each child is one challenger at one size.",
        },
    )
    parent_id = str(parent.info.run_id)
    _log_params(client, parent_id, params)
    client.log_table(parent_id, pd.DataFrame(list(table)), "learning_curve/table.json")
    client.log_artifact(parent_id, str(figure), "learning_curve")
    for point in points:
        child = client.create_run(
            experiment_id,
            run_name=f"{point.challenger} n={point.n_train}",
            tags={TAG_PARENT: parent_id, TAG_ROLE: ROLE_LEARNING_CURVE, "challenger": point.challenger},
        )
        child_id = str(child.info.run_id)
        _log_params(client, child_id, {**point.params, "n_train": point.n_train})
        client.log_metric(child_id, "sigma_mad", point.sigma_mad)
        client.log_metric(child_id, "outlier_frac_005", point.outlier_frac_005)
        if point.crps is not None:
            client.log_metric(child_id, "crps", point.crps)
        client.log_metric(child_id, "wall_seconds", point.seconds)
        _log_history(client, child_id, point.history)
        client.set_terminated(child_id)
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "learning_curve.csv"
        pd.DataFrame(list(table)).to_csv(csv, index=False)
        client.log_artifact(parent_id, str(csv), "learning_curve")
    client.set_terminated(parent_id)
    log.info("learning curve logged: run %s in experiment %s", parent_id, experiment_id)
    return parent_id
