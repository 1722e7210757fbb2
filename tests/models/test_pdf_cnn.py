import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from astrospect.data.shards import Cutouts
from astrospect.models.calibration import (
    Calibration,
    apply_calibration,
    bin_logits,
    calibrate_pdf_model,
    calibrated_pdfs,
    fit_calibration,
    model_calibration,
    nll,
    pit_cvm,
)
from astrospect.models.cnn import (
    EBV_INPUT,
    build_pdf_cnn,
    build_photoz_cnn,
    build_seed_cnn,
    count_trainable_params,
    fit_input_scaling,
    fit_photometry_scaling,
    load_model,
    pdf_bins,
    takes_ebv,
)
from astrospect.models.predict import predict_pdf
from astrospect.pdf.bins import DEFAULT_BINS, RedshiftBins, RedshiftPdfs, encode_redshift_bins, shift_pdfs
from astrospect.pdf.metrics import pit_values

pytestmark = pytest.mark.model


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
    assert np.allclose(predict_pdf(pdf, raw_cutouts).probabilities, probs, atol=1e-6)
    with pytest.raises(ValueError, match="not a PDF"):
        predict_pdf(seed, raw_cutouts)


def test_pdf_cnn_on_the_photoz_trunk_takes_ebv_and_calibrates_on_cutouts_with_or_without_it(
    raw_cutouts: np.ndarray,
) -> None:
    """The `pdf` challenger: `cnn-ebv`'s trunk (same layers, same shapes) under the softmax head."""
    scaling, photometry = fit_input_scaling(raw_cutouts), fit_photometry_scaling(raw_cutouts)
    point = build_photoz_cnn(scaling, photometry, 0.0, 0.6)
    pdf = build_pdf_cnn(scaling, DEFAULT_BINS, photometry=photometry)
    assert takes_ebv(pdf) and pdf_bins(pdf) == DEFAULT_BINS
    trunk = [layer.name for layer in point.layers][
        : [layer.name for layer in point.layers].index("dense2") + 1
    ]
    for name in trunk:
        assert [w.shape for w in pdf.get_layer(name).weights] == [
            w.shape for w in point.get_layer(name).weights
        ]
    # the point head's 128 -> 1 sigmoid (129 parameters) becomes 128 -> 280 logits
    assert count_trainable_params(pdf) == count_trainable_params(point) - 129 + 129 * DEFAULT_BINS.n
    head = pdf.get_layer("bin_logits")  # untrained but peaked: about N(0.3, 0.05), moved by each input
    kernel, _ = head.get_weights()
    head.set_weights([kernel, -((DEFAULT_BINS.centres - 0.3) ** 2) / (2 * 0.05**2)])
    ebv = np.linspace(0.0, 0.3, len(raw_cutouts)).astype(np.float32)
    with_ebv = predict_pdf(pdf, raw_cutouts, ebv).probabilities
    without = predict_pdf(pdf, raw_cutouts).probabilities
    assert np.allclose(with_ebv.sum(axis=1), 1.0, atol=1e-5) and not np.allclose(with_ebv, without)
    # validation redshifts drawn from the model's own PDFs (the fit refuses PDFs far from the redshifts)
    rng, copies = np.random.default_rng(5), 16
    images = np.concatenate([raw_cutouts] * copies)
    known = Cutouts(
        images,
        np.arange(len(images)),
        redshift=_draw_redshifts(np.concatenate([with_ebv] * copies), DEFAULT_BINS, rng).astype(np.float32),
        ebv=np.concatenate([ebv] * copies),
    )
    unknown = _labelled(images, _draw_redshifts(np.concatenate([without] * copies), DEFAULT_BINS, rng))
    logits = np.concatenate([bin_logits(pdf, images, known.ebv), bin_logits(pdf, images)])
    z = np.concatenate([known.redshift, unknown.redshift])
    report = calibrate_pdf_model(pdf, [known, unknown])  # the second chunk has no E(B-V): the fallback
    # each chunk was scored with its own E(B-V), or without: the NLL before calibration is exactly that
    assert report["val_nll_before"] == pytest.approx(nll(logits, z, DEFAULT_BINS, Calibration()), rel=1e-5)
    assert model_calibration(pdf).temperature == pytest.approx(report["temperature"])
    assert {tensor.name for tensor in pdf.inputs} == {"cutouts", EBV_INPUT}


def test_saved_pdf_model_gives_identical_pdfs_with_its_bins_and_temperature_in_a_fresh_process(
    tmp_path: Path, raw_cutouts: np.ndarray
) -> None:
    bins = RedshiftBins.uniform(0.0, 0.7, 140)
    model = build_pdf_cnn(fit_input_scaling(raw_cutouts), bins)
    apply_calibration(model, Calibration(1.7, 0.0123))
    expected = np.asarray(model.predict_on_batch(raw_cutouts))
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "cutouts.npy", raw_cutouts)
    script = (
        "import numpy as np, sys, json; from astrospect.models.cnn import load_model, pdf_bins, PDF_OUTPUT; "
        "m = load_model(sys.argv[1]); np.save(sys.argv[3], m.predict_on_batch(np.load(sys.argv[2]))); "
        "l = m.get_layer(PDF_OUTPUT); "
        "print(json.dumps([pdf_bins(m).edges, float(l.temperature.numpy()), float(l.shift.numpy())]))"
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
    edges, temperature, shift = json.loads(done.stdout.strip().splitlines()[-1])
    assert tuple(edges) == bins.edges and temperature == pytest.approx(1.7) and shift == pytest.approx(0.0123)
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
    assert np.allclose(
        load_model(tmp_path / "model.keras").predict_on_batch(raw_cutouts), expected, atol=1e-7
    )


def _labelled(images: np.ndarray, z: np.ndarray) -> Cutouts:
    """Validation cutouts with their spec-z, as calibration reads them."""
    return Cutouts(images, np.arange(len(images)), redshift=np.asarray(z, np.float32))


def _draw_redshifts(probs: np.ndarray, bins: RedshiftBins, rng: np.random.Generator) -> np.ndarray:
    index = (probs.cumsum(axis=1) < rng.uniform(size=(len(probs), 1))).sum(axis=1).clip(0, bins.n - 1)
    return bins.edge_array[index] + rng.uniform(size=len(index)) * bins.widths[index]


def test_fit_calibration_recovers_a_known_temperature_and_shift_on_synthetic_logits() -> None:
    rng = np.random.default_rng(11)
    bins = RedshiftBins.uniform(0.0, 1.0, 200)  # width 0.005, well below the PDFs' widths
    truth = Calibration(temperature=2.5, shift=0.03)
    # an over-confident, off-centre network: its logits are 2.5 x the true log-PDFs (Gaussians), and the
    # galaxies lie 0.03 above where it puts them
    mu, sigma = rng.uniform(0.25, 0.75, 6_000), rng.uniform(0.03, 0.08, 6_000)
    logits = -truth.temperature * (bins.centres[None, :] - mu[:, None]) ** 2 / (2 * sigma[:, None] ** 2)
    z = _draw_redshifts(special.softmax(logits / truth.temperature, axis=1), bins, rng) + truth.shift
    fitted = fit_calibration(logits, z, bins)
    assert fitted.temperature == pytest.approx(truth.temperature, rel=0.05)
    assert fitted.shift == pytest.approx(truth.shift, abs=0.002)
    assert pit_cvm(logits, z, bins, fitted) < 0.3 < pit_cvm(logits, z, bins, Calibration())
    # the textbook recipe fits the temperature alone by likelihood; it finds it when nothing is off-centre
    unshifted = z - truth.shift
    by_likelihood = fit_calibration(logits, unshifted, bins, "nll")
    assert (
        by_likelihood.temperature == pytest.approx(truth.temperature, rel=0.05) and by_likelihood.shift == 0
    )
    assert nll(logits, unshifted, bins, by_likelihood) < nll(logits, unshifted, bins, Calibration())


def test_shifting_pdfs_moves_their_mass_exactly() -> None:
    bins = RedshiftBins.uniform(0.0, 1.0, 10)
    probs = np.zeros((1, 10))
    probs[0, 4] = 1.0
    assert np.allclose(shift_pdfs(probs, bins, 0.2), np.eye(10)[[6]])
    assert np.allclose(shift_pdfs(probs, bins, -0.05), 0.5 * (np.eye(10)[3] + np.eye(10)[4]))
    assert np.allclose(shift_pdfs(probs, bins, 0.9), np.eye(10)[[9]])  # piles into the end bin
    rng = np.random.default_rng(2)
    many = rng.dirichlet(np.ones(10), size=20)
    many[:, [0, -1]] = 0
    many /= many.sum(axis=1, keepdims=True)
    moved = np.asarray(shift_pdfs(many, bins, 0.037), dtype=np.float64)
    assert np.allclose(moved.sum(axis=1), 1.0, atol=1e-6)
    # at every bin edge the moved PDF's CDF is the original's CDF 0.037 lower
    for edge in bins.edge_array[1:-1]:
        at_edge = np.full(20, edge)
        assert np.allclose(
            pit_values(RedshiftPdfs(moved, bins), at_edge),
            pit_values(RedshiftPdfs(many, bins), at_edge - 0.037),
            atol=1e-6,
        )


def test_calibrating_a_model_stores_the_result_in_it_and_changes_the_pdfs(raw_cutouts: np.ndarray) -> None:
    bins = RedshiftBins.uniform(0.0, 0.7, 140)
    model = build_pdf_cnn(fit_input_scaling(raw_cutouts), bins)
    head = model.get_layer("bin_logits")  # a head that says "z ~ N(0.3, 0.05)" for every galaxy
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), -((bins.centres - 0.3) ** 2) / (2 * 0.05**2)])
    before = np.asarray(model.predict_on_batch(raw_cutouts))
    # validation redshifts drawn from PDFs twice as sharp (T = 0.5), 0.01 higher
    rng = np.random.default_rng(3)
    sharper = special.softmax(bin_logits(model, raw_cutouts) / 0.5, axis=1)
    images = np.concatenate([raw_cutouts] * 48)
    z = _draw_redshifts(np.concatenate([sharper] * 48), bins, rng) + 0.01
    report = calibrate_pdf_model(model, [_labelled(images[:700], z[:700]), _labelled(images[700:], z[700:])])
    assert report["val_pit_cvm_after"] < report["val_pit_cvm_before"]
    stored = model_calibration(model)
    assert (stored.temperature, stored.shift) == (
        pytest.approx(report["temperature"]),
        pytest.approx(report["shift"]),
    )
    assert report["temperature"] == pytest.approx(0.5, rel=0.2)
    assert report["shift"] == pytest.approx(0.01, abs=0.005)
    after = np.asarray(model.predict_on_batch(raw_cutouts))
    assert np.allclose(after, calibrated_pdfs(bin_logits(model, raw_cutouts), bins, stored), atol=1e-5)
    assert not np.allclose(after, before)


def test_calibration_refuses_redshifts_its_pdfs_cannot_describe(raw_cutouts: np.ndarray) -> None:
    """PDFs all near z = 0.04 and spec-z near 0.55: no temperature and no shift within bounds maps one onto
    the other, so the fit must refuse rather than store a calibration (built so, not left to chance)."""
    from astrospect.models.cnn import PDF_LOGITS

    bins = RedshiftBins.uniform(0.0, 0.7, 70)
    model = build_pdf_cnn(fit_input_scaling(raw_cutouts), bins)
    logits = model.get_layer(PDF_LOGITS)
    kernel, bias = logits.get_weights()
    peaked = np.full_like(bias, -10.0)
    peaked[4] = 10.0  # the bin 0.04-0.05
    logits.set_weights([np.zeros_like(kernel), peaked])
    z = np.random.default_rng(4).uniform(0.5, 0.6, len(raw_cutouts))
    with pytest.raises(RuntimeError, match="far from the validation redshifts"):
        calibrate_pdf_model(model, [_labelled(raw_cutouts, z)])
    assert model_calibration(model) == Calibration()  # nothing stored


def test_calibration_refuses_bad_input(raw_cutouts: np.ndarray) -> None:
    seed = build_seed_cnn(fit_input_scaling(raw_cutouts), 0.0, 0.6)
    with pytest.raises(ValueError, match="no PDF head"):
        calibrate_pdf_model(seed, [_labelled(raw_cutouts, np.zeros(len(raw_cutouts)))])
    with pytest.raises(ValueError, match="positive"):
        apply_calibration(build_pdf_cnn(fit_input_scaling(raw_cutouts), DEFAULT_BINS), Calibration(0.0))
    with pytest.raises(ValueError, match="shape"):
        fit_calibration(np.zeros((3, 5)), np.zeros(3), DEFAULT_BINS)
    with pytest.raises(ValueError, match="unknown calibration objective"):
        fit_calibration(np.zeros((3, DEFAULT_BINS.n)), np.zeros(3), DEFAULT_BINS, "crps")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uniform redshift bins"):
        build_pdf_cnn(fit_input_scaling(raw_cutouts), RedshiftBins((0.0, 0.1, 0.3, 0.7)))


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


def test_point_redshift_is_one_number_per_cutout_from_either_kind_of_model(raw_cutouts: np.ndarray) -> None:
    """Evaluation, drift and batch prediction read a champion's redshift through point_redshift: a PDF
    champion's is its PDF's POINT_ESTIMATE, not its (N, 280) probabilities."""
    from astrospect.models.predict import point_redshift, predict_redshift
    from astrospect.pdf.bins import POINT_ESTIMATE

    scaling = fit_input_scaling(raw_cutouts)
    seed, pdf = build_seed_cnn(scaling, 0.0, 0.6), build_pdf_cnn(scaling, DEFAULT_BINS)
    from_seed, from_pdf = point_redshift(seed, raw_cutouts), point_redshift(pdf, raw_cutouts)
    assert from_seed.shape == from_pdf.shape == (len(raw_cutouts),)
    np.testing.assert_array_equal(from_seed, predict_redshift(seed, raw_cutouts))
    expected = predict_pdf(pdf, raw_cutouts).point(POINT_ESTIMATE)
    np.testing.assert_allclose(from_pdf, expected, rtol=1e-6)
    assert np.all((from_pdf > DEFAULT_BINS.edges[0]) & (from_pdf < DEFAULT_BINS.edges[-1]))
