import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from astrospect.models.cnn import (
    SEED_TRAINABLE_PARAMS,
    build_seed_cnn,
    count_trainable_params,
    fit_input_scaling,
    load_model,
)

pytestmark = pytest.mark.model


def test_architecture_is_the_seed_exactly(raw_cutouts: np.ndarray) -> None:
    model = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.0, 0.6)
    assert count_trainable_params(model) == SEED_TRAINABLE_PARAMS == 421_725
    learned = [
        (type(layer).__name__, layer.output.shape[1:])
        for layer in model.layers
        if layer.trainable_weights or "pool" in layer.name or "dropout" in layer.name
    ]
    assert learned == [
        ("Conv2D", (28, 28, 32)),
        ("MaxPooling2D", (14, 14, 32)),
        ("Conv2D", (10, 10, 64)),
        ("MaxPooling2D", (5, 5, 64)),
        ("Dense", (220,)),
        ("Dropout", (220,)),
        ("Dense", (64,)),
        ("Dropout", (64,)),
        ("Dense", (1,)),
    ]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "sigmoid"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]


def test_output_stays_within_the_training_redshift_range(raw_cutouts: np.ndarray) -> None:
    model = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.02, 0.55)
    z = model.predict_on_batch(raw_cutouts * 1000)  # absurd input still maps into [z_min, z_max]
    assert np.all((z >= 0.02) & (z <= 0.55))


def test_pixel_scaling_maps_training_pixels_into_unit_range(raw_cutouts: np.ndarray) -> None:
    model = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.0, 0.6)
    scaled = keras.Model(model.input, model.get_layer("pixel_scaling").output).predict_on_batch(raw_cutouts)
    assert np.quantile(scaled, 0.001) >= -0.01 and np.quantile(scaled, 0.999) <= 1.01
    assert scaled.std() > 0.02  # the stretch keeps the noise and the galaxy distinguishable


def test_saved_model_predicts_identically_in_a_fresh_process(tmp_path: Path, raw_cutouts: np.ndarray) -> None:
    model = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.0, 0.6)
    expected = np.asarray(model.predict_on_batch(raw_cutouts))
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "cutouts.npy", raw_cutouts)
    script = (
        "import numpy as np, sys; from astrospect.models.cnn import load_model; "
        "m = load_model(sys.argv[1]); np.save(sys.argv[3], m.predict_on_batch(np.load(sys.argv[2])))"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "model.keras"),
            str(tmp_path / "cutouts.npy"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
        capture_output=True,
    )
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
    assert np.allclose(
        load_model(tmp_path / "model.keras").predict_on_batch(raw_cutouts), expected, atol=1e-6
    )


def test_rejects_an_empty_redshift_range(raw_cutouts: np.ndarray) -> None:
    with pytest.raises(ValueError, match="increasing"):
        build_seed_cnn(fit_input_scaling(raw_cutouts), 0.3, 0.3)
