"""Deploy: make the MLflow registry's champion servable by BentoML (docs/explanation/architecture.md, "Serving").

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from astrospect.serving.card import (
    CHAMPION,
    LABEL_DATASET,
    LABEL_NAME,
    LABEL_RUN,
    LABEL_VERSION,
    MLFLOW_MODEL_FOLDER,
    bento_model_name,
    keras_file,
)
from astrospect.settings import PROJECT_ROOT, Settings, export_environment, get_logger, load_settings
from astrospect.tracking.registry import Champion, read_champion

if TYPE_CHECKING:
    import bentoml

log = get_logger(__name__)

BENTOFILE = PROJECT_ROOT / "bentofile.yaml"
LABEL_SOURCE_DIGEST = "source_digest"
LABEL_BENTO_MODEL = "bento_model"


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


def use_bentoml_home(settings: Settings) -> Path:
    """Point BentoML at ``settings.bentoml_home``; must run before BentoML opens its stores."""
    home = settings.bentoml_home
    # BentoML posts usage statistics to its vendor unless told not to; nothing here should phone out.
    export_environment({"BENTOML_HOME": str(home)}, defaults={"BENTOML_DO_NOT_TRACK": "true"})
    from bentoml._internal.configuration.containers import BentoMLContainer

    active = Path(BentoMLContainer.bentoml_home.get()).resolve()
    if active != home:
        raise RuntimeError(
            f"BentoML already opened its stores at {active}; expected {home} (set BENTOML_HOME before it starts)"
        )
    return home


def bento_labels(champion: Champion) -> dict[str, str]:
    """The labels of a deployed version on its BentoML model and its bento: what was deployed, from where."""
    return {
        LABEL_NAME: champion.registered_model,
        LABEL_VERSION: champion.version,
        LABEL_RUN: champion.run_id,
        LABEL_DATASET: champion.dataset_version or "unknown",
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


def install(champion: Champion, alias: str = CHAMPION) -> Deployment:
    """Import the model into BentoML's store (once per version) and build a bento pinning it."""
    tag = f"{bento_model_name(champion.registered_model)}:v{champion.version}-{champion.run_id[:12].lower()}"
    metadata = {"metrics": champion.metrics, "registry_alias": alias, "model_uri": champion.model_uri}
    stored, reused_model = _import_model(tag, champion.model_uri, bento_labels(champion), metadata)
    bento, reused_bento = _build_bento(stored, bento_labels(champion))
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
