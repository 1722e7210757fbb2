"""What the serving tests share: a champion in a real MLflow registry, `astrospect deploy`, `astrospect serve`.

The MLflow server is the tracking tests' (``tracking_support.mlflow_server``: the project's own start
script, SQLite + local artifacts, loopback): the session's shared one (``tracking_uri``, the ``mlflow_url``
fixture), the champion under a registered-model name of its own, or one started for the stack. The champion is a tiny untrained seed CNN, or PDF CNN with a
non-trivial calibration (``pdf=True``), or `cnn-ebv`'s photo-z CNN with its E(B-V) input (``ebv=True``), logged with ``mlflow.tensorflow.log_model`` beside a real holdout
metric table and a dataset version tag; deploy and serve run as the commands a user types, in
subprocesses, against temp folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.data.shards import read_shard, write_shard
from astrospect.pdf.bins import DEFAULT_BINS, RedshiftBins, RedshiftPdfs
from astrospect.settings import CUTOUT_SIZE, N_BANDS
from harness.serving_process import served
from tests.support.tracking import mlflow_server

MODEL_NAME = "astrospect-photoz"  # a stack's registered-model name unless it is given another
DATASET_VERSION = "serving-test-v1"
# The PDF champion's calibration: far from the identity (T 1, shift 0), so serving must use the saved one.
PDF_TEMPERATURE, PDF_SHIFT = 0.35, 0.0125


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    metrics: dict[str, float]
    shard: Path  # the cutouts it is checked on (labels included)
    images: npt.NDArray[np.float32]  # the same cutouts, channels-last
    # what the MLflow model predicts for them (with the shard's E(B-V), for a model that takes it):
    # redshifts, or (N, bins) PDFs
    expected: npt.NDArray[np.float32]
    keras_path: Path  # the same model as a .keras file (what `astrospect predict --model` takes)
    bins: RedshiftBins | None = None  # a PDF champion's bins
    model_name: str = MODEL_NAME  # the registered model it is the champion of


@dataclass(frozen=True)
class Stack:
    """A served champion: the server's URL, the registry's, what deploy printed, the environment used."""

    url: str
    registry: str
    champion: Champion
    deployed: dict[str, Any]
    env: dict[str, str]


@contextmanager
def served_champion(
    home: Path,
    pdf: bool = False,
    ebv: bool = False,
    *,
    tracking_uri: str | None = None,
    model_name: str = MODEL_NAME,
    **serving: str,
) -> Iterator[Stack]:
    """Champion (a PDF model with ``pdf``, an E(B-V) model with ``ebv``) registered as ``model_name`` in the
    MLflow server at ``tracking_uri`` (or in one started under ``home``), ``astrospect deploy``, ``astrospect
    serve``: everything else under ``home``. ``serving`` is the server's ``ASTROSPECT_SERVING_*`` settings."""
    with ExitStack() as started:
        registry = tracking_uri or started.enter_context(mlflow_server(home))
        if pdf:
            champion = register_pdf_champion(registry, home, model_name)
        elif ebv:
            champion = register_ebv_champion(registry, home, model_name)
        else:
            champion = register_seed_champion(registry, home, model_name)
        env = stack_env(home, registry, ASTROSPECT_MODEL_NAME=model_name, **serving)
        deployed = run_deploy(env)
        with bento_server(env, home / "serve.log") as url:
            yield Stack(url, registry, champion, deployed, env)


def galaxy_shard(path: Path, n: int, seed: int, with_ebv: bool = False) -> Path:
    """Cutouts with sky noise and a bright centre, band-first as stored; labels included, and each cutout's
    E(B-V) with ``with_ebv`` (0.02-0.5, wider than the sky's, so a model's answer moves with it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CUTOUT_SIZE, 0:CUTOUT_SIZE] - (CUTOUT_SIZE - 1) / 2
    profile = np.exp(-(xx**2 + yy**2) / (2 * rng.uniform(1.5, 4.0, (n, 1, 1, 1)) ** 2))
    flux = rng.lognormal(1.0, 0.8, (n, N_BANDS, 1, 1))
    images = (flux * profile + rng.normal(0, 0.05, (n, N_BANDS, CUTOUT_SIZE, CUTOUT_SIZE))).astype(np.float32)
    objid = np.arange(n, dtype=np.int64) + 1_237_660_000_000_000_000
    z = rng.uniform(0.02, 0.5, n).astype(np.float32)
    ebv = rng.uniform(0.02, 0.5, n).astype(np.float32) if with_ebv else None
    return write_shard(path, images, objid, z, np.full(n, 1e-4, np.float32), ebv=ebv)


def register_seed_champion(tracking_uri: str, folder: Path, model_name: str = MODEL_NAME) -> Champion:
    """Log a tiny seed CNN the way the pipeline does and make it the registry's champion."""
    from astrospect.models.cnn import build_seed_cnn, fit_input_scaling

    shard = galaxy_shard(folder / "cutouts.h5", n=48, seed=7)
    cutouts = read_shard(shard)
    model = build_seed_cnn(fit_input_scaling(cutouts.images), 0.0, 0.6)
    return _register_champion(tracking_uri, folder, model, shard, None, model_name)


def register_pdf_champion(tracking_uri: str, folder: Path, model_name: str = MODEL_NAME) -> Champion:
    """Log a tiny PDF CNN over the default bins, calibrated to (PDF_TEMPERATURE, PDF_SHIFT), as champion."""
    from astrospect.models.calibration import Calibration, apply_calibration
    from astrospect.models.cnn import build_pdf_cnn, fit_input_scaling

    shard = galaxy_shard(folder / "cutouts.h5", n=48, seed=7)
    cutouts = read_shard(shard)
    model = build_pdf_cnn(fit_input_scaling(cutouts.images), DEFAULT_BINS)
    apply_calibration(model, Calibration(PDF_TEMPERATURE, PDF_SHIFT))
    return _register_champion(tracking_uri, folder, model, shard, DEFAULT_BINS, model_name)


def register_ebv_champion(tracking_uri: str, folder: Path, model_name: str = MODEL_NAME) -> Champion:
    """Log a tiny `cnn-ebv` photo-z CNN (cutouts and E(B-V) in) as champion, checked on a shard with ``ebv``."""
    from astrospect.models.cnn import build_photoz_cnn, fit_input_scaling, fit_photometry_scaling

    shard = galaxy_shard(folder / "cutouts.h5", n=48, seed=7, with_ebv=True)
    images = read_shard(shard).images
    model = build_photoz_cnn(fit_input_scaling(images), fit_photometry_scaling(images), 0.0, 0.6)
    return _register_champion(tracking_uri, folder, model, shard, None, model_name)


def _register_champion(
    tracking_uri: str, folder: Path, model: Any, shard: Path, bins: RedshiftBins | None, model_name: str
) -> Champion:
    import mlflow
    import mlflow.tensorflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from astrospect.data.metrics import metric_table
    from astrospect.models.cnn import CUTOUTS_INPUT, EBV_INPUT, takes_ebv
    from astrospect.models.predict import model_inputs
    from astrospect.pdf.bins import POINT_ESTIMATE
    from astrospect.tracking.registry import CHAMPION_ALIAS
    from astrospect.tracking.tags import TAG_DATASET_VERSION

    cutouts = read_shard(shard)
    assert cutouts.redshift is not None
    output = (
        TensorSpec(np.dtype(np.float32), (-1,), "redshift")
        if bins is None
        else TensorSpec(np.dtype(np.float32), (-1, bins.n), "redshift_pdf")
    )
    cutouts_spec = TensorSpec(np.dtype(np.float32), (-1, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), CUTOUTS_INPUT)
    inputs = (
        [cutouts_spec, TensorSpec(np.dtype(np.float32), (-1,), EBV_INPUT)]
        if takes_ebv(model)
        else [cutouts_spec]
    )
    signature = ModelSignature(inputs=Schema(inputs), outputs=Schema([output]))
    # What the model is fed for the shard, its E(B-V) included when it has an input for it.
    fed = model_inputs(model, cutouts.images, cutouts.ebv)
    answers = np.asarray(model.predict_on_batch(fed))
    redshift = answers if bins is None else RedshiftPdfs(answers, bins).point(POINT_ESTIMATE)
    metrics = metric_table(cutouts.redshift, redshift)
    keras_path = folder / "champion.keras"
    model.save(keras_path)
    # The registry URI is process-global too: an earlier test module may have pointed it at a server that
    # is gone, so set (and restore) both. MLflow's setters also write MLFLOW_TRACKING_URI and
    # MLFLOW_REGISTRY_URI into os.environ (for subprocesses): restoring the URIs would write an earlier test's
    # server back over the caller's environment, so the environment is restored after them.
    previous_uri, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    previous_environment = {
        name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run(tags={TAG_DATASET_VERSION: DATASET_VERSION}) as run:
            mlflow.log_metrics(metrics)
            info = mlflow.tensorflow.log_model(
                model,
                name="model",
                signature=signature,
                input_example=model_inputs(
                    model, cutouts.images[:2], None if cutouts.ebv is None else cutouts.ebv[:2]
                ),
                registered_model_name=model_name,
                pip_requirements=["tensorflow", "keras"],
            )
        version = str(info.registered_model_version)
        mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
            model_name, CHAMPION_ALIAS, version
        )
        # The MLflow model's own predictions: its loader unpickles the custom layer it saved (our own model).
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
        try:
            logged = mlflow.pyfunc.load_model(f"models:/{model_name}@{CHAMPION_ALIAS}")
        finally:
            os.environ.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
        expected = np.asarray(logged.predict(fed), dtype=np.float32)
    finally:
        mlflow.set_tracking_uri(previous_uri)
        mlflow.set_registry_uri(previous_registry)
        for name, value in previous_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if bins is None:
        expected = expected.reshape(-1)
    return Champion(
        version, run.info.run_id, metrics, shard, cutouts.images, expected, keras_path, bins, model_name
    )


def stack_env(home: Path, tracking_uri: str, **serving: str) -> dict[str, str]:
    """The environment a user's shell would have: everything under ``home``, the test's MLflow server."""
    env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
    env.update(
        ASTROSPECT_HOME=str(home), MLFLOW_TRACKING_URI=tracking_uri, TF_CPP_MIN_LOG_LEVEL="2", **serving
    )
    return env


def astrospect_command(*args: str) -> list[str]:
    """The ``astrospect`` console script of this environment (what ``make`` and a user run)."""
    return [str(Path(sys.executable).parent / "astrospect"), *args]


def run_deploy(env: dict[str, str]) -> dict[str, Any]:
    """``astrospect deploy``; returns its JSON summary."""
    done = subprocess.run(astrospect_command("deploy"), env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"astrospect deploy failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout[done.stdout.index("{") :]))


@contextmanager
def bento_server(env: dict[str, str], log_path: Path, *extra: str) -> Iterator[str]:
    """``astrospect serve`` on a free loopback port; yields its URL once ``/readyz`` answers 200."""
    with served(env, log_path, *extra) as (url, _):
        yield url
