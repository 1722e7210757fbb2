"""The model registry: one registered model, a version per trained challenger, aliases ``champion`` and
``challenger``. This module owns every alias move and every version lookup and returns typed views;
promotion only decides (:mod:`astrospect.promote`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from astrospect.data.metrics import METRIC_NAMES
from astrospect.models.registry import Challenger
from astrospect.settings import Settings, get_logger
from astrospect.tracking.server import check_tracking_server, client_for
from astrospect.tracking.tags import (
    TAG_CHALLENGER,
    TAG_CLIPPING,
    TAG_DATASET_VERSION,
    TAG_OUTPUT,
    TAG_SESSION_RUN_ID,
    challenger_tags,
    quoted,
)

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = get_logger(__name__)

CHAMPION_ALIAS = "champion"  # the model served
CHALLENGER_ALIAS = "challenger"  # the newest registered version, then the one promotion last compared


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered version and what the registry knows about it."""

    name: str
    version: str
    run_id: str
    challenger: str | None  # None for a version registered by hand, outside a session
    output: str  # "point" or "pdf"
    clipping: str
    dataset_version: str | None
    session_run_id: str | None
    uri: str  # models:/<name>/<version>
    tags: Mapping[str, str]

    @classmethod
    def from_entity(cls, entity: ModelVersion) -> RegisteredVersion:
        tags = dict(entity.tags or {})
        return cls(
            name=str(entity.name),
            version=str(entity.version),
            run_id=str(entity.run_id),
            challenger=tags.get(TAG_CHALLENGER),
            output=tags.get(TAG_OUTPUT, "point"),
            clipping=tags.get(TAG_CLIPPING, ""),
            dataset_version=tags.get(TAG_DATASET_VERSION),
            session_run_id=tags.get(TAG_SESSION_RUN_ID),
            uri=f"models:/{entity.name}/{entity.version}",
            tags=tags,
        )


@dataclass(frozen=True)
class Champion:
    """A registered version to deploy or watch: where the model is, and what the tracking server knows about it."""

    registered_model: str
    version: str
    run_id: str
    model_uri: str  # models:/<name>/<version>, or any MLflow model URI (the benchmark uses a local folder)
    dataset_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def read_champion(settings: Settings, alias_or_version: str = CHAMPION_ALIAS) -> Champion:
    """A registered version (by alias or number), with its run's dataset version and holdout metric table."""
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        check_tracking_server(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    version = (
        get_version(settings, alias_or_version)
        if alias_or_version.isdigit()
        else by_alias(settings, alias_or_version)
    )
    if version is None:
        raise LookupError(f"registered model {name!r} has no alias {alias_or_version!r}: nothing to deploy")
    run = client_for(settings).get_run(version.run_id)
    metrics = {
        metric: float(run.data.metrics[metric]) for metric in METRIC_NAMES if metric in run.data.metrics
    }
    missing = [metric for metric in METRIC_NAMES if metric not in metrics]
    if missing:
        log.warning(
            "run %s has no holdout metric(s) %s; /metadata will show the rest", run.info.run_id, missing
        )
    return Champion(
        registered_model=name,
        version=version.version,
        run_id=version.run_id,
        model_uri=version.uri,
        dataset_version=run.data.tags.get(TAG_DATASET_VERSION) or run.data.params.get("dataset_version"),
        metrics=metrics,
    )


def model_uri(settings: Settings, alias_or_version: str) -> str:
    """``models:/<name>/<version>`` for a number, ``models:/<name>@<alias>`` for an alias."""
    name = settings.registered_model_name
    return (
        f"models:/{name}/{alias_or_version}"
        if alias_or_version.isdigit()
        else f"models:/{name}@{alias_or_version}"
    )


def register(
    settings: Settings,
    logged_model_uri: str,
    challenger: Challenger,
    *,
    run_id: str,
    session_run_id: str,
    dataset_version: str,
    extra_tags: Mapping[str, str],
) -> RegisteredVersion:
    """Register a logged model as a new version and point ``challenger`` at it (the newest version)."""
    import mlflow

    client_for(settings)
    entity = mlflow.register_model(
        logged_model_uri,
        settings.registered_model_name,
        tags={
            **challenger_tags(challenger),
            TAG_SESSION_RUN_ID: session_run_id,
            TAG_DATASET_VERSION: dataset_version,
            **extra_tags,
        },
    )
    if str(entity.run_id) != run_id:
        raise RuntimeError(
            f"registered version {entity.version} points at run {entity.run_id}, expected {run_id}"
        )
    registered = get_version(settings, str(entity.version))
    point_challenger(settings, registered.version)
    return registered


def get_version(settings: Settings, version: str) -> RegisteredVersion:
    client = client_for(settings)
    return RegisteredVersion.from_entity(client.get_model_version(settings.registered_model_name, version))


def version_of_run(settings: Settings, run_id: str) -> RegisteredVersion | None:
    """The newest version registered from ``run_id``, or None."""
    client = client_for(settings)
    found = client.search_model_versions(
        f"name = '{quoted(settings.registered_model_name)}' and run_id = '{quoted(run_id)}'"
    )
    if not found:
        return None
    return RegisteredVersion.from_entity(max(found, key=lambda v: int(v.version)))


def by_alias(settings: Settings, alias: str) -> RegisteredVersion | None:
    """The version an alias points at; None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    try:
        entity = client.get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return RegisteredVersion.from_entity(entity)


def champion(settings: Settings) -> RegisteredVersion | None:
    return by_alias(settings, CHAMPION_ALIAS)


def move_champion(settings: Settings, version: str) -> None:
    _set_alias(client_for(settings), settings, CHAMPION_ALIAS, version)


def point_challenger(settings: Settings, version: str) -> None:
    _set_alias(client_for(settings), settings, CHALLENGER_ALIAS, version)


def tag_version(settings: Settings, version: str, tags: Mapping[str, str]) -> None:
    client = client_for(settings)
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model_name, version, key, value)


def load_model(settings: Settings, alias_or_version: str = CHAMPION_ALIAS) -> keras.Model:
    """Load ``models:/<name>@<alias>`` (or ``/<version>`` for a number) as a Keras model."""
    import mlflow.tensorflow

    import astrospect.models.cnn  # noqa: F401  (registers the custom layers that the saved model uses)

    client_for(settings)
    return mlflow.tensorflow.load_model(model_uri(settings, alias_or_version))


def _set_alias(client: MlflowClient, settings: Settings, alias: str, version: str) -> None:
    client.set_registered_model_alias(settings.registered_model_name, alias, version)
    log.info("alias %s -> %s version %s", alias, settings.registered_model_name, version)
