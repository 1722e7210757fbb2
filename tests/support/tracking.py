"""What the tracking tests share: a real MLflow server started by the project's own script, tiny shards,
and "reader" models whose holdout metrics are known in advance.

A reader model returns one pixel of the cutout. The test shards store the redshift (exactly, with noise,
with outliers, with an offset) in pixel (0, 0) of each band, so each reader's sigma_mad, outlier fraction
and bias are set by construction: the promotion policy can be driven through every branch on a real
registry without depending on what two epochs of training happen to learn.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from astrospect.data.shards import write_shard
from astrospect.settings import CUTOUT_SIZE, N_BANDS, PROJECT_ROOT, Settings
from harness.ports import free_port

if TYPE_CHECKING:
    from astrospect.models.pipeline import ChallengerOutcome
    from astrospect.tracking.runs import LoggedRun

SERVER_SCRIPT = PROJECT_ROOT / "mlflow" / "server.sh"
START_LIMIT_S = 900  # how long ``server.sh up`` may run before it is stopped (it gives up by itself before)
# Which band's pixel (0, 0) holds which version of the redshift.
EXACT_BAND, NOISY_BAND, OUTLIER_BAND, OFFSET_BAND = 0, 1, 2, 3
NOISE_SIGMA = 0.02  # NOISY_BAND: z + N(0, 0.02)
OUTLIER_DZ = 0.5  # OUTLIER_BAND: z + 0.5 for every fifth galaxy, else exact
OFFSET_DZ = 0.03  # OFFSET_BAND: z + 0.03 (a pure bias)


@contextmanager
def mlflow_server(home: Path, port: int | None = None) -> Iterator[str]:
    """Start ``mlflow server`` with ``mlflow/server.sh`` (SQLite + artifacts under ``home``); yield its URL.

    ``port`` (default: a free one) lets a test start the same server again at the same URL after stopping it.
    """
    env = {
        **os.environ,
        "ASTROSPECT_HOME": str(home),
        "MLFLOW_PORT": str(port or free_port()),
        "MLFLOW_WORKERS": "1",
    }
    env.pop("MLFLOW_CONFIG", None)
    try:
        # The script's own limit (MLFLOW_START_TIMEOUT_S, 180 s of polling) is what fails a start; this one
        # only stops a script that hangs. A start on a 2-core machine under load has taken over 240 s.
        started = subprocess.run(
            [str(SERVER_SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=START_LIMIT_S
        )
    except subprocess.TimeoutExpired:
        subprocess.run([str(SERVER_SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        raise
    if started.returncode != 0:
        subprocess.run([str(SERVER_SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        log = home / "mlflow" / "server.log"
        raise RuntimeError(
            f"mlflow/server.sh up failed ({started.returncode}): {started.stderr}\n"
            f"{log.read_text() if log.exists() else ''}"
        )
    url = subprocess.run(
        [str(SERVER_SCRIPT), "url"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run(
            [str(SERVER_SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=60, check=True
        )


def stop_mlflow_server(home: Path, port: int) -> None:
    """Stop the server :func:`mlflow_server` started for ``home`` on ``port``, from inside its block (a fault
    injected mid-step); the block's own stop then finds it stopped."""
    env = {**os.environ, "ASTROSPECT_HOME": str(home), "MLFLOW_PORT": str(port)}
    env.pop("MLFLOW_CONFIG", None)
    subprocess.run(
        [str(SERVER_SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=60, check=True
    )


def settings_for(home: Path, url: str, name: str = "astrospect-photoz", **other: Any) -> Settings:
    """Settings for a test server: ``name`` as the experiment's and the registered model's (on the session's
    shared server, one no other test uses; default: the defaults'), everything under ``home``, and any
    ``other`` settings."""
    return Settings(
        home=home, mlflow_tracking_uri=url, registered_model_name=name, experiment_name=name, **other
    )


def write_reader_shards(folder: Path, n_per_shard: int = 300, n_shards: int = 2, seed: int = 0) -> list[Path]:
    """Shards of sky-like noise whose pixel (0, 0) carries the redshift in the ways listed above."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n_shards):
        n = n_per_shard
        objid = np.arange(k * n, (k + 1) * n, dtype=np.int64) + 1_237_650_000_000_000_000
        z = rng.uniform(0.01, 0.6, n).astype(np.float32)
        images = rng.normal(0.0, 0.05, size=(n, N_BANDS, CUTOUT_SIZE, CUTOUT_SIZE)).astype(np.float32)
        images[:, :, 12:20, 12:20] += rng.gamma(2.0, 1.0, size=(n, N_BANDS, 1, 1)).astype(
            np.float32
        )  # a "galaxy"
        images[:, EXACT_BAND, 0, 0] = z
        images[:, NOISY_BAND, 0, 0] = z + rng.normal(0.0, NOISE_SIGMA, n)
        images[:, OUTLIER_BAND, 0, 0] = z + np.where(objid % 5 == 0, OUTLIER_DZ, 0.0)
        images[:, OFFSET_BAND, 0, 0] = z + OFFSET_DZ
        paths.append(write_shard(folder / f"reader-{k}.h5", images, objid, z, np.full(n, 1e-4, np.float32)))
    return paths


def reader_model(band: int, name: str) -> object:
    """A Keras model (raw cutouts in, redshift out) that returns pixel (0, 0) of ``band``."""
    import keras
    from keras import layers

    inputs = keras.Input((CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name="cutouts")
    x = layers.Cropping2D(((0, CUTOUT_SIZE - 1), (0, CUTOUT_SIZE - 1)))(inputs)
    x = layers.Flatten()(x)
    pick = np.eye(N_BANDS, dtype=np.float32)[band].reshape(N_BANDS, 1)
    x = layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(pick))(x)
    return keras.Model(inputs, layers.Reshape(())(x), name=name)


def reader_outcome(band: int, challenger_name: str, shards: list[Path]) -> ChallengerOutcome:
    """A reader model as a trained challenger's outcome, built from the lead's real classes."""
    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import read_shard
    from astrospect.models import registry as challengers
    from astrospect.models.evaluate import evaluate_model
    from astrospect.models.pipeline import ChallengerOutcome
    from astrospect.models.predict import predict_redshift
    from astrospect.models.registry import Trained

    challenger = challengers.get(challenger_name)
    model: Any = reader_model(band, f"reader_band{band}")
    splits = select_splits(shards, challenger.clipping)
    trained = Trained(
        challenger=challenger,
        predict=lambda cutouts: predict_redshift(model, cutouts.images),
        params={"reader_band": band, "clipping": challenger.clipping, "epochs": 2},
        n_train=len(splits.train),
        n_val=len(splits.val),
        history={"loss": [0.02, 0.01], "mae": [0.1, 0.08], "val_loss": [0.03, 0.02], "val_mae": [0.12, 0.1]},
        run_metrics={"images_per_second": 1000.0},
        keras_model=model,
        input_example=read_shard(shards[0]).images[:3],
    )
    return ChallengerOutcome(trained, evaluate_model(model, splits.holdout, name=challenger.name))


def log_reader(
    settings: Settings, parent_run_id: str, band: int, challenger_name: str, shards: list[Path]
) -> LoggedRun:
    """Log a reader as the session's ``challenger_name``, the way a training task does."""
    from astrospect.models import registry as challengers
    from astrospect.tracking.runs import train_once

    outcome = reader_outcome(band, challenger_name, shards)
    return train_once(settings, parent_run_id, challengers.get(challenger_name), lambda: outcome, shards)


def log_reader_in_process(
    url: str, home: str, name: str, parent_run_id: str, challenger_name: str, band: int, shards: list[str]
) -> tuple[str, str | None]:
    """What one Airflow training task does, in a separate process: log a reader as ``challenger_name``.

    It prepares everything, writes ``<home>/ready`` and logs only once ``<home>/go`` exists, so the caller can
    make the two processes hit the server at the same moment.
    """
    import time

    from astrospect.models import registry as challengers
    from astrospect.tracking.runs import train_once

    settings = settings_for(Path(home), url).replace(registered_model_name=name, experiment_name=name)
    outcome = reader_outcome(band, challenger_name, [Path(s) for s in shards])
    (Path(home) / "ready").touch()
    deadline = time.monotonic() + 120
    while not (Path(home) / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{home}/go never appeared")
        time.sleep(0.05)
    logged = train_once(settings, parent_run_id, challengers.get(challenger_name), lambda: outcome)
    return logged.run_id, logged.model_version
