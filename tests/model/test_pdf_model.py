import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from astrospect.calibration import (
    apply_temperature,
    bin_logits,
    calibrate_temperature,
    fit_temperature,
    temperature_nll,
)
from astrospect.model import (
    PDF_OUTPUT,
    build_pdf_cnn,
    build_seed_cnn,
    count_trainable_params,
    fit_input_scaling,
    load_model,
    pdf_bins,
)
from astrospect.pdf import DEFAULT_BINS, RedshiftBins, encode_redshift_bins


@pytest.fixture(scope="module")
def raw_cutouts() -> np.ndarray:
    rng = np.random.default_rng(7)
    sky = rng.normal(0, 0.03, (32, 32, 32, 5))
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    galaxy = 20.0 * np.exp(-(xx**2 + yy**2) / 8.0)[None, :, :, None] * rng.uniform(0.1, 3, (32, 1, 1, 5))
    return (sky + galaxy).astype(np.float32)


def test_pdf_cnn_shares_the_seed_trunk_and_ends_in_a_softmax_over_the_bins(raw_cutouts: np.ndarray) -> None:
    scaling = fit_input_scaling(raw_cutouts)
    seed, pdf = build_seed_cnn(scaling, 0.0, 0.6), build_pdf_cnn(scaling, DEFAULT_BINS)
    trunk = [layer.name for layer in seed.layers][
        : [layer.name for layer in seed.layers].index("dropout2") + 1
    ]
    assert [layer.name for layer in pdf.layers][: len(trunk)] == trunk
    for name in trunk:
        assert [w.shape for w in pdf.get_layer(name).weights] == [
            w.shape for w in seed.get_layer(name).weights
        ]
    # the seed's 64 -> 1 sigmoid (65 parameters) becomes 64 -> 280 logits
    assert count_trainable_params(pdf) == count_trainable_params(seed) - 65 + 65 * DEFAULT_BINS.n
    probs = np.asarray(pdf.predict_on_batch(raw_cutouts))
    assert probs.shape == (32, DEFAULT_BINS.n)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and np.all(probs >= 0)
    assert pdf_bins(pdf) == DEFAULT_BINS and pdf_bins(seed) is None


def test_saved_pdf_model_gives_identical_pdfs_with_its_bins_and_temperature_in_a_fresh_process(
    tmp_path: Path, raw_cutouts: np.ndarray
) -> None:
    bins = RedshiftBins.uniform(0.0, 0.7, 140)
    model = build_pdf_cnn(fit_input_scaling(raw_cutouts), bins)
    apply_temperature(model, 1.7)
    expected = np.asarray(model.predict_on_batch(raw_cutouts))
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "cutouts.npy", raw_cutouts)
    script = (
        "import numpy as np, sys, json; from astrospect.model import load_model, pdf_bins, PDF_OUTPUT; "
        "m = load_model(sys.argv[1]); np.save(sys.argv[3], m.predict_on_batch(np.load(sys.argv[2]))); "
        "print(json.dumps([pdf_bins(m).edges, float(m.get_layer(PDF_OUTPUT).temperature.numpy())]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            *(str(tmp_path / f) for f in ("model.keras", "cutouts.npy", "out.npy")),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    edges, temperature = json.loads(done.stdout.strip().splitlines()[-1])
    assert tuple(edges) == bins.edges and temperature == pytest.approx(1.7)
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
    assert np.allclose(
        load_model(tmp_path / "model.keras").predict_on_batch(raw_cutouts), expected, atol=1e-7
    )


def test_fit_temperature_recovers_a_known_temperature_on_synthetic_logits() -> None:
    rng = np.random.default_rng(11)
    bins = RedshiftBins.uniform(0.0, 1.0, 40)
    logits = rng.normal(0, 3, (20_000, bins.n))
    true_temperature = 2.5
    probs = special.softmax(logits / true_temperature, axis=1)
    labels = (probs.cumsum(axis=1) < rng.uniform(size=(len(probs), 1))).sum(axis=1).clip(0, bins.n - 1)
    z = bins.centres[labels]
    fitted = fit_temperature(logits, z, bins)
    assert fitted == pytest.approx(true_temperature, rel=0.03)
    nll = temperature_nll(logits, z, bins, fitted)
    assert nll < temperature_nll(logits, z, bins, 1.0) and nll < temperature_nll(logits, z, bins, 4.0)


def test_calibrate_temperature_stores_it_in_the_model_and_changes_the_pdfs(raw_cutouts: np.ndarray) -> None:
    bins = RedshiftBins.uniform(0.0, 0.7, 70)
    model = build_pdf_cnn(fit_input_scaling(raw_cutouts), bins)
    before = np.asarray(model.predict_on_batch(raw_cutouts))
    rng = np.random.default_rng(3)
    z = rng.uniform(0.0, 0.7, len(raw_cutouts))
    report = calibrate_temperature(model, [(raw_cutouts[:16], z[:16]), (raw_cutouts[16:], z[16:])])
    assert report["val_nll_after"] <= report["val_nll_before"]
    assert float(model.get_layer(PDF_OUTPUT).temperature.numpy()) == pytest.approx(report["temperature"])
    after = np.asarray(model.predict_on_batch(raw_cutouts))
    expected = special.softmax(bin_logits(model, raw_cutouts) / report["temperature"], axis=1)
    assert np.allclose(after, expected, atol=1e-5) and not np.allclose(after, before)


def test_calibration_and_temperatures_refuse_bad_input(raw_cutouts: np.ndarray) -> None:
    seed = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.0, 0.6)
    with pytest.raises(ValueError, match="no PDF head"):
        calibrate_temperature(seed, [(raw_cutouts, np.zeros(len(raw_cutouts)))])
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(build_pdf_cnn(fit_input_scaling(raw_cutouts), DEFAULT_BINS), 0.0)
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.zeros((3, 5)), np.zeros(3), DEFAULT_BINS)


def test_encoded_targets_are_one_hot_or_a_smoothed_kernel_and_run_in_tf_data() -> None:
    import tensorflow as tf

    bins = RedshiftBins.uniform(0.0, 0.7, 280)
    hard = np.asarray(encode_redshift_bins(np.array([0.0, 0.1, 0.10124, 0.69, 0.9, -0.1]), bins))
    assert hard.argmax(axis=1).tolist() == [0, 40, 40, 276, 279, 0] and np.all(hard.sum(axis=1) == 1)
    soft = np.asarray(encode_redshift_bins(np.array([0.2]), bins, smoothing=0.005))[0]
    assert soft.sum() == pytest.approx(1.0, abs=1e-6)
    assert soft @ bins.centres == pytest.approx(0.2, abs=1e-5)
    assert np.sqrt(soft @ (bins.centres - 0.2) ** 2) == pytest.approx(
        np.hypot(0.005, 0.0025 / np.sqrt(12)), rel=0.02
    )
    with pytest.raises(ValueError, match=">= 0"):
        encode_redshift_bins(np.array([0.2]), bins, smoothing=-1.0)
    dataset = tf.data.Dataset.from_tensor_slices(np.array([0.05, 0.3], np.float32)).batch(2)
    (targets,) = list(dataset.map(lambda z: encode_redshift_bins(z, bins)).as_numpy_iterator())
    assert targets.argmax(axis=1).tolist() == [20, 120]
