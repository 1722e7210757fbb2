"""The deployed model as the service sees it: the BentoML model to serve, its labels, and its Keras file.

``astrospect deploy`` (:mod:`astrospect.deploy`) imports a registry version into BentoML's model store with
these labels; the service (:mod:`astrospect.serving.service`) finds that model and reads its card back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import yaml

from astrospect.settings import CUTOUT_SIZE, N_BANDS, Settings, load_settings

if TYPE_CHECKING:
    import bentoml

CHAMPION = "champion"  # the MLflow registry alias deployed, and the bento's alias for its pinned model
MLFLOW_MODEL_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model puts the MLflow model
# Labels on the BentoML model and the bento: what was deployed, from where.
LABEL_NAME = "mlflow_model_name"
LABEL_VERSION = "mlflow_model_version"
LABEL_RUN = "mlflow_run_id"
LABEL_DATASET = "dataset_version"


@dataclass(frozen=True)
class ModelCard:
    """A deployed model as the service sees it: identity, provenance, and the Keras file to load."""

    model_name: str
    model_version: str
    run_id: str
    dataset_version: str | None
    metrics: dict[str, float]
    bento_model: str
    keras_path: Path
    input_shape: tuple[int, int, int] = (CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS)


def bento_model_name(registered_model_name: str) -> str:
    """The registered MLflow name as a BentoML tag name (lower case, ``[a-z0-9._-]``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", registered_model_name.lower()).strip("-._")
    if not name:
        raise ValueError(
            f"registered model name {registered_model_name!r} has no characters usable in a BentoML tag"
        )
    return name


def champion_bento_model(settings: Settings | None = None) -> bentoml.Model:
    """The model to serve: the bento's pinned ``champion``; from source, the newest imported version."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(CHAMPION)  # an alias only inside a bento built by deploy_champion
    except NotFound:
        pass
    name = bento_model_name((settings or load_settings()).registered_model_name)
    try:
        return bentoml.models.get(f"{name}:latest")
    except NotFound as error:
        raise LookupError(
            f"no model '{name}' in BentoML's store (BENTOML_HOME); run `astrospect deploy` first"
        ) from error


def model_card(stored: bentoml.Model) -> ModelCard:
    labels, metadata = stored.info.labels, stored.info.metadata
    missing = [key for key in (LABEL_NAME, LABEL_VERSION, LABEL_RUN) if key not in labels]
    if missing:
        raise ValueError(
            f"BentoML model {stored.tag} lacks label(s) {missing}: it was not imported by `astrospect deploy`"
        )
    dataset_version = labels.get(LABEL_DATASET)
    return ModelCard(
        model_name=labels[LABEL_NAME],
        model_version=labels[LABEL_VERSION],
        run_id=labels[LABEL_RUN],
        dataset_version=None if dataset_version in (None, "unknown") else dataset_version,
        metrics={str(k): float(v) for k, v in cast(dict[str, float], metadata.get("metrics") or {}).items()},
        bento_model=str(stored.tag),
        keras_path=keras_file(Path(stored.path_of(MLFLOW_MODEL_FOLDER))),
    )


def keras_file(mlflow_model_dir: Path) -> Path:
    """The ``.keras`` file inside an MLflow Keras model, found through its MLmodel flavor config.

    Loading it with Keras directly (not through pyfunc) skips MLflow's import and its pickled custom objects;
    importing :mod:`astrospect.models.cnn` registers the one custom layer.
    """
    mlmodel = mlflow_model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise FileNotFoundError(f"{mlflow_model_dir}: no MLmodel file; not an MLflow model")
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    flavor = flavors.get("keras") or flavors.get("tensorflow")
    if flavor is None:
        raise ValueError(
            f"{mlmodel}: field 'flavors': expected a keras or tensorflow flavor, got {sorted(flavors)}"
        )
    data = mlflow_model_dir / str(flavor.get("data", "data"))
    candidates = sorted(data.glob("*.keras")) if data.is_dir() else []
    if not candidates:
        raise FileNotFoundError(
            f"{data}: no .keras file (the model must be logged by mlflow.keras / mlflow.tensorflow)"
        )
    return candidates[0]
