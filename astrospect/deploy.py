"""Deploy: make the MLflow registry's champion servable by BentoML (docs/architecture.md, "Serving").

``deploy_champion`` reads ``models:/<name>@champion``, imports that version into BentoML's model store
(``BENTOML_HOME``, by default ``$ASTROSPECT_HOME/bentoml``) with its MLflow name, version and run id as
labels and the run's dataset version and holdout metric table as metadata, then builds a bento
(``bentofile.yaml``) that pins it under the alias ``champion``. ``make serve`` serves the newest bento, so a
running server picks up a new champion when it restarts.

Nothing stored is replaced: a version already in the store is reused, and a bento is built only when the
champion or the serving code changed.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from astrospect.data.metrics import METRIC_NAMES
from astrospect.settings import CUTOUT_SIZE, N_BANDS, PROJECT_ROOT, Settings, get_logger, load_settings

if TYPE_CHECKING:
    import bentoml

log = get_logger(__name__)

BENTOFILE = PROJECT_ROOT / "bentofile.yaml"
CHAMPION = "champion"  # the MLflow registry alias deployed, and the bento's alias for its pinned model
MLFLOW_MODEL_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model puts the MLflow model
# Labels on the BentoML model and the bento: what was deployed, from where.
LABEL_NAME = "mlflow_model_name"
LABEL_VERSION = "mlflow_model_version"
LABEL_RUN = "mlflow_run_id"
LABEL_DATASET = "dataset_version"
LABEL_SOURCE_DIGEST = "source_digest"
LABEL_BENTO_MODEL = "bento_model"


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


@dataclass(frozen=True)
class Deployment:
    """What ``astrospect deploy`` did; ``summary()`` is what the nightly DAG's deploy task returns."""

    registered_model: str
    version: str
    run_id: str
    dataset_version: str | None
    bento_model: str
    bento: str
    reused_model: bool
    reused_bento: bool
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def bento_model_name(registered_model_name: str) -> str:
    """The registered MLflow name as a BentoML tag name (lower case, ``[a-z0-9._-]``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", registered_model_name.lower()).strip("-._")
    if not name:
        raise ValueError(
            f"registered model name {registered_model_name!r} has no characters usable in a BentoML tag"
        )
    return name


def use_bentoml_home(settings: Settings) -> Path:
    """Point BentoML at ``settings.bentoml_home``; must run before BentoML opens its stores."""
    home = settings.bentoml_home
    os.environ["BENTOML_HOME"] = str(home)
    # BentoML posts usage statistics to its vendor unless told not to; nothing here should phone out.
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    from bentoml._internal.configuration.containers import BentoMLContainer

    active = Path(BentoMLContainer.bentoml_home.get()).resolve()
    if active != home:
        raise RuntimeError(
            f"BentoML already opened its stores at {active}; expected {home} (set BENTOML_HOME before it starts)"
        )
    return home


@dataclass(frozen=True)
class Champion:
    """A registry entry to deploy: where the model is, and what the tracking server knows about it."""

    registered_model: str
    version: str
    run_id: str
    model_uri: str  # models:/<name>/<version>, or any MLflow model URI (the benchmark uses a local folder)
    dataset_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_NAME: self.registered_model,
            LABEL_VERSION: self.version,
            LABEL_RUN: self.run_id,
            LABEL_DATASET: self.dataset_version or "unknown",
        }


def deploy_champion(settings: Settings | None = None, alias: str = CHAMPION) -> Deployment:
    """Import ``models:/<name>@<alias>`` into BentoML's store and build a bento serving it."""
    settings = settings or load_settings()
    use_bentoml_home(settings)
    return install(read_champion(settings, alias), alias)


def deploy_version(settings: Settings, version: str) -> Deployment:
    """Deploy one registered version (the nightly DAG deploys the version promotion returned)."""
    use_bentoml_home(settings)
    return install(read_champion(settings, version))


def read_champion(settings: Settings, alias_or_version: str = CHAMPION) -> Champion:
    """A registered version (by alias or number), with its run's dataset version and holdout metric table."""
    from astrospect.tracking import registry
    from astrospect.tracking.server import check_tracking_server, client_for
    from astrospect.tracking.tags import TAG_DATASET_VERSION

    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        check_tracking_server(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    version = (
        registry.get_version(settings, alias_or_version)
        if alias_or_version.isdigit()
        else registry.by_alias(settings, alias_or_version)
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


def install(champion: Champion, alias: str = CHAMPION) -> Deployment:
    """Import the model into BentoML's store (once per version) and build a bento pinning it."""
    tag = f"{bento_model_name(champion.registered_model)}:v{champion.version}-{champion.run_id[:12].lower()}"
    metadata = {"metrics": champion.metrics, "registry_alias": alias, "model_uri": champion.model_uri}
    stored, reused_model = _import_model(tag, champion.model_uri, champion.labels(), metadata)
    bento, reused_bento = _build_bento(stored, champion.labels())
    deployment = Deployment(
        registered_model=champion.registered_model,
        version=champion.version,
        run_id=champion.run_id,
        dataset_version=champion.dataset_version,
        bento_model=str(stored.tag),
        bento=str(bento.tag),
        reused_model=reused_model,
        reused_bento=reused_bento,
        metrics=champion.metrics,
    )
    log.info(
        "deployed %s version %s (run %s): bento model %s%s, bento %s%s",
        champion.registered_model,
        champion.version,
        champion.run_id,
        stored.tag,
        " (already in the store)" if reused_model else "",
        bento.tag,
        " (unchanged)" if reused_bento else "",
    )
    return deployment


def _import_model(
    tag: str, model_uri: str, labels: dict[str, str], metadata: dict[str, Any]
) -> tuple[bentoml.Model, bool]:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        stored = None
    if stored is not None:
        if stored.info.labels.get(LABEL_RUN) != labels[LABEL_RUN]:
            raise RuntimeError(
                f"BentoML model {tag} exists but holds run {stored.info.labels.get(LABEL_RUN)}, not {labels[LABEL_RUN]}"
            )
        return stored, True
    log.info("importing %s into BentoML's model store as %s", model_uri, tag)
    imported = bentoml.mlflow.import_model(tag, model_uri, labels=labels, metadata=metadata)
    try:
        keras_file(Path(imported.path_of(MLFLOW_MODEL_FOLDER)))  # fail at deploy time, not at serve time
    except (FileNotFoundError, ValueError):
        bentoml.models.delete(
            tag
        )  # the import just made: a later deploy must not reuse a model it cannot serve
        raise
    return imported, False


def _build_bento(stored: bentoml.Model, model_labels: dict[str, str]) -> tuple[bentoml.Bento, bool]:
    """Build from ``bentofile.yaml`` plus the pinned champion; reuse the newest bento if nothing changed."""
    import bentoml
    from bentoml.exceptions import NotFound

    config = bento_config()
    labels = {
        **config.pop("labels", {}),
        **model_labels,
        LABEL_BENTO_MODEL: str(stored.tag),
        LABEL_SOURCE_DIGEST: source_digest(config.get("include", [])),
    }
    try:
        newest = bentoml.bentos.get(f"{config['name']}:latest")
    except NotFound:
        newest = None
    if newest is not None and all(newest.info.labels.get(key) == value for key, value in labels.items()):
        return newest, True
    bento = bentoml.bentos.build(
        **config,
        labels=labels,
        models=[{"tag": str(stored.tag), "alias": CHAMPION}],
        build_ctx=str(PROJECT_ROOT),
    )
    return bento, False


def bento_config() -> dict[str, Any]:
    """``bentofile.yaml``: the service import path, the bento's name, what it includes."""
    config = yaml.safe_load(BENTOFILE.read_text())
    if not isinstance(config, dict) or not {"service", "name"} <= config.keys():
        raise ValueError(f"{BENTOFILE}: expected a mapping with 'service' and 'name'")
    return config


def source_digest(include: list[str], root: Path = PROJECT_ROOT) -> str:
    """sha256 over the files a bento includes (and the bentofile): a new digest means new serving code."""
    digest = hashlib.sha256((root / BENTOFILE.name).read_bytes())
    for path in included_files(include, root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def included_files(include: list[str], root: Path = PROJECT_ROOT) -> list[Path]:
    """The files ``include``'s patterns select under ``root``, as BentoML packs them."""
    matched = {path for pattern in include for path in root.glob(pattern) if path.is_file()}
    return sorted(path for path in matched if "__pycache__" not in path.parts)


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
