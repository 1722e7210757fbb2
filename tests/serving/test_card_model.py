"""The service loads the champion's ``.keras`` file directly (not MLflow's pyfunc): same model, same answers,
for models saved by either MLflow flavor the project uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrospect.models.cnn import build_seed_cnn, fit_input_scaling, load_model
from astrospect.models.predict import predict_redshift
from astrospect.serving.card import keras_file

pytestmark = pytest.mark.model


@pytest.mark.parametrize("flavor", ["keras", "tensorflow"])
def test_the_keras_file_of_an_mlflow_model_predicts_like_the_model(tmp_path: Path, flavor: str) -> None:
    import mlflow.keras
    import mlflow.tensorflow

    rng = np.random.default_rng(11)
    images = rng.lognormal(0.0, 1.0, (16, 32, 32, 5)).astype(np.float32)
    model = build_seed_cnn(fit_input_scaling(images), 0.0, 0.6)
    save = mlflow.keras.save_model if flavor == "keras" else mlflow.tensorflow.save_model
    save(model, str(tmp_path / "model"), pip_requirements=["keras"])
    loaded = load_model(keras_file(tmp_path / "model"))
    np.testing.assert_allclose(predict_redshift(loaded, images), predict_redshift(model, images), rtol=1e-6)
