"""Adding a challenger touches the registry and its builder only.

A tiny extra challenger is registered here (an entry plus the builder below, nothing else) and a whole
session runs with it through the nightly steps, called directly: the short-circuit, the session, training
and logging, promotion, the report and the compare view, against a real MLflow server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from astrospect import nightly
from astrospect.models import registry as challengers
from astrospect.models.registry import Challenger, Trained
from astrospect.settings import Settings, load_settings
from astrospect.simulate import synthesize

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.models.registry import TrainConfig

pytestmark = pytest.mark.integration

TINY = Challenger(
    "tiny-mean-colour",
    "tests.models.test_challenger_registry:fit_tiny",
    "full",
    description="a dense layer on each band's mean flux: the smallest CNN-like challenger",
)


def fit_tiny(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The tiny challenger's builder: one dense layer on the band means, one epoch."""
    import keras

    from astrospect.data.dataset import make_tf_dataset, sample_images
    from astrospect.models.predict import predict_redshift

    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((32, 32, 5), name="cutouts")
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Reshape(())(keras.layers.Dense(1)(x))
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    fit = model.fit(
        make_tf_dataset(splits.train, 64, shuffle=True, seed=config.seed),
        validation_data=make_tf_dataset(splits.val, 64, shuffle=False, seed=config.seed),
        epochs=1,
        verbose=0,
    )
    return Trained(
        challenger=challenger,
        predict=lambda cutouts: predict_redshift(model, cutouts.images),
        params={"epochs": 1, "clipping": splits.clipping},
        n_train=len(splits.train),
        n_val=len(splits.val),
        history={key: [float(v) for v in values] for key, values in fit.history.items()},
        keras_model=model,
        input_example=sample_images(splits.train, 2),
    )


@pytest.fixture
def tiny_registered() -> Iterator[Challenger]:
    challengers.register(TINY)
    try:
        yield TINY
    finally:
        challengers.unregister(TINY.name)


@pytest.fixture(scope="module")
def tracking_url(mlflow_url: str) -> str:
    return mlflow_url  # the session's server: the test's experiment and model have names of their own


def test_a_session_with_an_extra_challenger_runs_through_tracking_promotion_and_report(
    tiny_registered: Challenger, tracking_url: str, tmp_path: Path
) -> None:
    from astrospect.report import comparison_frame
    from astrospect.tracking import registry, sessions

    settings: Settings = load_settings().replace(
        home=tmp_path / "home",
        mlflow_tracking_uri=tracking_url,
        registered_model_name="challenger-registry-test",
        experiment_name="challenger-registry-test",
        challengers=(tiny_registered.name, "baseline-knn-full"),
    )
    landing = tmp_path / "landing"
    synthesize(landing, n=400, seed=5, shard_size=200)
    nightly.ingest_step(str(landing), settings)
    nightly.validate_step(settings)
    snapshot = nightly.snapshot_step(settings)

    assert nightly.should_train(snapshot, settings=settings)
    parent = nightly.start_session_step(snapshot, airflow_run_id=None, settings=settings)
    logged = {
        challenger.name: nightly.train_step(challenger.name, parent, snapshot, epochs=1, settings=settings)
        for challenger in challengers.for_session(settings.challengers)
    }
    assert logged["baseline-knn-full"]["model_version"] is None  # a baseline is never registered
    version = logged[tiny_registered.name]["model_version"]
    assert version is not None
    assert registry.get_version(settings, version).challenger == tiny_registered.name

    decision = nightly.promote_step(parent, snapshot, settings)
    assert decision["promoted"] and decision["champion_after"] == version  # the only registered one
    assert decision["candidates"][version]["challenger"] == tiny_registered.name
    assert registry.champion(settings) is not None and registry.champion(settings).version == version  # type: ignore[union-attr]

    _, _, table = comparison_frame(settings, parent)
    ours = table[table["data"].str.startswith("ours")]
    assert list(ours["model"]) == [tiny_registered.name, "baseline-knn-full"]
    assert np.isfinite(ours["sigma_mad"]).all()
    assert list(ours["registry"]) == [f"v{version} champion", ""]
    compare = sessions.compare_url(parent, settings)
    children = sessions.session_children(settings, parent)
    assert [child.challenger for child in children] == [tiny_registered.name, "baseline-knn-full"]
    assert all(child.run_id in compare for child in children)

    # The next night on the same data: already trained by exactly this session's challengers...
    assert not nightly.should_train(snapshot, settings=settings)
    # ...unless the night drifts and ASTROSPECT_DRIFT_ACTION=retrain (`warn`, the default, only reports).
    for drifting, action, trains in (
        (True, "retrain", True),
        (True, "warn", False),
        (False, "retrain", False),
    ):
        drift = {"status": "measured", "drifting": drifting, "action": action}
        assert nightly.should_train(snapshot, drift=drift, settings=settings) is trains
    # A retried training task finds its finished run and trains nothing.
    again = nightly.train_step(tiny_registered.name, parent, snapshot, epochs=1, settings=settings)
    assert again == {**logged[tiny_registered.name], "reused": True}
