"""The seed CNN and the PDF CNN on its trunk, with their scalings inside the model.

Raw cutouts (N, 32, 32, 5) in nanomaggies go in, redshift (or its PDF over fixed bins) comes out: the
per-band pixel stretch, the redshift min-max, the bin edges and the PDF's temperature are fitted on the
training or validation split and stored in the layers' configs or weights, so a saved or logged model
needs nothing else to predict, and training and serving cannot disagree on scaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import numpy.typing as npt
from keras import layers

from astrospect.data.photometry import SDSS_SOFTENING_B, aperture_weights, luptitudes
from astrospect.data.shards import CUTOUTS_INPUT, EBV_INPUT
from astrospect.pdf.bins import RedshiftBins, shift_pdfs
from astrospect.settings import CUTOUT_SIZE, N_BANDS

Stretch = Literal["asinh", "linear"]
SEED_TRAINABLE_PARAMS = 421_725
_EDGE_PIXELS = 4  # border width used to estimate each band's sky noise


@dataclass(frozen=True)
class InputScaling:
    """Per-band pixel scaling fitted on training cutouts: stretch, then map [lo, hi] to [0, 1]."""

    stretch: Stretch
    softening: tuple[float, ...]  # asinh softening per band, nanomaggies (the sky noise)
    lo: tuple[float, ...]
    hi: tuple[float, ...]


def fit_input_scaling(images: npt.NDArray[np.floating], stretch: Stretch = "asinh") -> InputScaling:
    """Fit the pixel scaling on a sample of training cutouts (N, 32, 32, 5).

    asinh with a softening of one sky sigma is linear in the noise and logarithmic in bright cores, as
    SDSS colour images are made (Lupton et al. 2004); the seed's plain min-max is ``stretch="linear"``.
    lo / hi are the 0.01 and 99.99 percentiles, a min-max that a single cosmic ray cannot set.
    """
    images = np.asarray(images, dtype=np.float64)
    border = np.concatenate(
        [images[:, :_EDGE_PIXELS].reshape(-1, N_BANDS), images[:, -_EDGE_PIXELS:].reshape(-1, N_BANDS)]
    )
    sky_sigma = 1.4826 * np.median(np.abs(border - np.median(border, axis=0)), axis=0)
    softening = np.maximum(sky_sigma, 1e-6)
    stretched = np.arcsinh(images / softening) if stretch == "asinh" else images
    flat = stretched.reshape(-1, N_BANDS)
    lo = np.percentile(flat, 0.01, axis=0)
    hi = np.percentile(flat, 99.99, axis=0)
    hi = np.where(hi - lo > 1e-6, hi, lo + 1.0)
    return InputScaling(
        stretch=stretch,
        softening=tuple(float(v) for v in softening),
        lo=tuple(float(v) for v in lo),
        hi=tuple(float(v) for v in hi),
    )


@keras.saving.register_keras_serializable(package="astrospect")
class BandStretch(layers.Layer):
    """Non-trainable per-band pixel scaling; its fitted constants live in the layer config."""

    def __init__(
        self, stretch: Stretch, softening: list[float], lo: list[float], hi: list[float], **kwargs: Any
    ) -> None:
        super().__init__(trainable=False, **{k: v for k, v in kwargs.items() if k != "trainable"})
        self.stretch = stretch
        self.softening = [float(v) for v in softening]
        self.lo = [float(v) for v in lo]
        self.hi = [float(v) for v in hi]

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, "float32")
        if self.stretch == "asinh":
            x = keras.ops.arcsinh(x / keras.ops.convert_to_tensor(self.softening, "float32"))
        lo = keras.ops.convert_to_tensor(self.lo, "float32")
        hi = keras.ops.convert_to_tensor(self.hi, "float32")
        return (x - lo) / (hi - lo)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "stretch": self.stretch,
            "softening": self.softening,
            "lo": self.lo,
            "hi": self.hi,
        }


def pixel_scaling(scaling: InputScaling) -> BandStretch:
    """The first layer of every CNN here: the fitted per-band stretch, computed in float32."""
    params = asdict(scaling)
    return BandStretch(
        params["stretch"],
        list(params["softening"]),
        list(params["lo"]),
        list(params["hi"]),
        name="pixel_scaling",
        dtype="float32",
    )


def _seed_trunk(scaling: InputScaling) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The seed's layers from raw cutouts to its last 64 features: the part every CNN head shares."""
    inputs = keras.Input(shape=(CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name="cutouts", dtype="float32")
    x = pixel_scaling(scaling)(inputs)
    x = layers.Conv2D(32, 5, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(220, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = layers.Dense(64, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.5, name="dropout2")(x)
    return inputs, x


def build_seed_cnn(scaling: InputScaling, z_min: float, z_max: float, name: str = "seed_cnn") -> keras.Model:
    """The seed architecture, exactly; 421,725 trainable parameters, the scalings add none."""
    if not z_max > z_min:
        raise ValueError(f"redshift range must be increasing, got z_min={z_min}, z_max={z_max}")
    inputs, features = _seed_trunk(scaling)
    x = layers.Dense(1, activation="sigmoid", name="z_normalised", dtype="float32")(features)
    x = layers.Rescaling(scale=z_max - z_min, offset=z_min, name="redshift_scaling", dtype="float32")(x)
    outputs = layers.Reshape((), name="redshift")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="astrospect")
class RedshiftPdf(layers.Layer):
    """softmax(logits / temperature), moved by ``shift`` in redshift; the bin edges live in the layer config.

    Temperature (1) and shift (0) are non-trainable weights, fitted after training on the validation split by
    :func:`astrospect.models.calibration.calibrate_pdf_model` and saved with the weights, so the saved model gives
    calibrated PDFs and names its own bins (:func:`pdf_bins`).
    """

    def __init__(self, bin_edges: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bin_edges = [float(v) for v in bin_edges]
        self.bins = RedshiftBins(tuple(self.bin_edges))
        if not np.allclose(self.bins.widths, self.bins.widths[0], rtol=1e-6):
            raise ValueError("the PDF head needs uniform redshift bins (its calibration shift re-bins them)")
        self.temperature = self.add_weight(
            name="temperature", shape=(), initializer="ones", trainable=False, dtype="float32"
        )
        self.shift = self.add_weight(
            name="shift", shape=(), initializer="zeros", trainable=False, dtype="float32"
        )

    def call(self, logits: Any) -> Any:
        logits = keras.ops.cast(logits, "float32")
        return shift_pdfs(keras.ops.softmax(logits / self.temperature, axis=-1), self.bins, self.shift)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bin_edges": self.bin_edges}


PDF_OUTPUT = "redshift_pdf"
PDF_LOGITS = "bin_logits"


# The PDF head's biases start at this fraction of log N(z) (the training split's redshift histogram): the
# untrained model answers a broadened N(z) instead of a flat PDF over 0-0.7. Chosen on the validation loss
# of 6-epoch runs on the 12k demo set: zero bias 4.928 -> 4.223, half 4.495 -> 4.219, the whole log N(z)
# 4.419 -> 4.414 (started at N(z), it barely learned the galaxies: no large early gradient breaks the
# trunk's symmetry).
PRIOR_BIAS_FRACTION = 0.5
_PRIOR_FLOOR = 1e-4  # an empty bin starts at log(1e-4) times the fraction, not at -inf


def build_pdf_cnn(
    scaling: InputScaling,
    bins: RedshiftBins,
    name: str = "pdf_cnn",
    prior: npt.NDArray[np.floating] | None = None,
    photometry: tuple[list[float], list[float]] | None = None,
) -> keras.Model:
    """A softmax head over ``bins`` on a CNN trunk: (N, bins.n) probabilities out.

    With ``photometry`` (:func:`fit_photometry_scaling`) the trunk is `cnn-ebv`'s (cutouts and E(B-V) in:
    the `pdf` challenger); without it, the seed's (cutouts alone). ``prior`` (N(z) on ``bins``) sets the
    head's initial biases (PRIOR_BIAS_FRACTION).
    """
    inputs: Any
    inputs, features = _seed_trunk(scaling) if photometry is None else _photoz_trunk(scaling, photometry)
    bias: Any = "zeros"
    if prior is not None:
        if np.shape(prior) != (bins.n,):
            raise ValueError(
                f"prior: expected {bins.n} probabilities (one per bin), got shape {np.shape(prior)}"
            )
        log_prior = np.log(np.maximum(np.asarray(prior, np.float64), _PRIOR_FLOOR))
        bias = keras.initializers.Constant(PRIOR_BIAS_FRACTION * log_prior)
    logits = layers.Dense(bins.n, name=PDF_LOGITS, dtype="float32", bias_initializer=bias)(features)
    outputs = RedshiftPdf(list(bins.edges), name=PDF_OUTPUT, dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


# ---- the photo-z CNN (challenger `cnn-ebv`): the inputs a real photo-z CNN uses ----
# Colours in several apertures carry the colour gradient (bulge against disk) as well as the colours: the
# k-NN baseline picks one of 1.5-4" on validation, the network gets them all and learns the weighting.
PHOTOMETRY_RADII_ARCSEC = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


@keras.saving.register_keras_serializable(package="astrospect")
class AperturePhotometry(layers.Layer):
    """Fixed aperture photometry inside the model: per aperture, the four adjacent colours and the r
    magnitude in SDSS asinh magnitudes (:mod:`astrospect.data.photometry`, the baseline's own definitions),
    standardised by a mean and scale fitted on training cutouts and kept in the layer config.

    Why inside the network: a CNN can learn flux ratios from pixels, but on 2 CPU cores and 10^4 galaxies it
    learns them worse than a measurement does (docs/explanation/studies.md). Giving the dense layers
    the measured colours next to the convolutional features leaves the convolutions the morphology (size,
    inclination, concentration) that colours do not have. The input is still the raw cutout alone.
    """

    def __init__(
        self, radii_arcsec: list[float], mean: list[float], scale: list[float], **kwargs: Any
    ) -> None:
        super().__init__(trainable=False, **{k: v for k, v in kwargs.items() if k != "trainable"})
        self.radii_arcsec = [float(r) for r in radii_arcsec]
        self.mean = [float(v) for v in mean]
        self.scale = [float(v) for v in scale]
        weights = np.stack([aperture_weights(r) for r in self.radii_arcsec], axis=-1)  # (H, W, R)
        self._weights = weights.reshape(-1, len(self.radii_arcsec)).astype(np.float32)

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, "float32")
        n_pixels = CUTOUT_SIZE * CUTOUT_SIZE
        pixels = keras.ops.reshape(keras.ops.transpose(x, (0, 3, 1, 2)), (-1, N_BANDS, n_pixels))
        flux = keras.ops.matmul(pixels, keras.ops.convert_to_tensor(self._weights))  # (N, 5, R) nanomaggies
        softening = keras.ops.convert_to_tensor(SDSS_SOFTENING_B.astype(np.float32).reshape(1, N_BANDS, 1))
        # luptitudes(), in float32 graph ops: -2.5/ln10 * (asinh(f / 2b) + ln b), f in maggies
        mags = (-2.5 / np.log(10.0)) * (
            keras.ops.arcsinh(flux * 1e-9 / (2.0 * softening)) + keras.ops.log(softening)
        )
        colours = mags[:, :-1, :] - mags[:, 1:, :]  # (N, 4, R)
        features = keras.ops.concatenate(
            [keras.ops.reshape(colours, (-1, (N_BANDS - 1) * len(self.radii_arcsec))), mags[:, 2, :]], axis=-1
        )
        mean = keras.ops.convert_to_tensor(self.mean, "float32")
        scale = keras.ops.convert_to_tensor(self.scale, "float32")
        return (features - mean) / scale

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], N_BANDS * len(self.radii_arcsec))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "radii_arcsec": self.radii_arcsec,
            "mean": self.mean,
            "scale": self.scale,
        }


def photometry_features(
    images: npt.NDArray[np.floating], radii_arcsec: tuple[float, ...]
) -> npt.NDArray[np.float64]:
    """The unstandardised features :class:`AperturePhotometry` computes, in numpy (to fit its scaling)."""
    from astrospect.data.photometry import aperture_flux

    mags = np.stack([luptitudes(aperture_flux(images, r)) for r in radii_arcsec], axis=-1)  # (N, 5, R)
    colours = (mags[:, :-1, :] - mags[:, 1:, :]).reshape(len(images), -1)
    return np.concatenate([colours, mags[:, 2, :]], axis=1)


def fit_photometry_scaling(
    images: npt.NDArray[np.floating], radii_arcsec: tuple[float, ...] = PHOTOMETRY_RADII_ARCSEC
) -> tuple[list[float], list[float]]:
    """Median and 1.4826 MAD of each photometry feature on training cutouts: robust to a few broken stamps."""
    features = photometry_features(images, radii_arcsec)
    median = np.median(features, axis=0)
    mad = 1.4826 * np.median(np.abs(features - median), axis=0)
    return [float(v) for v in median], [float(v) for v in np.maximum(mad, 1e-3)]


@keras.saving.register_keras_serializable(package="astrospect")
class ForegroundInput(layers.Layer):
    """E(B-V) in, (E(B-V) or 0, known 1/0) out: the documented fallback for shards without ``ebv``.

    A missing value (NaN) becomes zero with its mask at 0, so the dense layers can tell "no reddening"
    from "unknown"; the network trained on shards that carry ``ebv`` then answers for a cutout without it
    as for a typical sky position. Never a crash, never a made-up value.
    """

    def call(self, ebv: Any) -> Any:
        ebv = keras.ops.reshape(keras.ops.cast(ebv, "float32"), (-1, 1))
        known = keras.ops.logical_not(keras.ops.isnan(ebv))
        value = keras.ops.where(known, ebv, keras.ops.zeros_like(ebv))
        return keras.ops.concatenate([value * EBV_FEATURE_SCALE, keras.ops.cast(known, "float32")], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 2)


EBV_FEATURE_SCALE = 10.0  # E(B-V) is ~0.03: x10 puts it on the scale of the other (standardised) features


def _conv_block(
    x: keras.KerasTensor, filters: int, kernel: int, name: str, padding: str = "same"
) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _photoz_trunk(
    scaling: InputScaling, photometry: tuple[list[float], list[float]]
) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor]:
    """The `cnn-ebv` layers from cutouts and E(B-V) to its last 128 features: the part its point and PDF
    heads share.

    Three batch-normalised convolution blocks (about the seed's cost per image: ~9 M multiply-adds) pooled
    to one vector, beside the in-model aperture photometry and E(B-V) (Pasquet et al. 2019 give E(B-V) to
    the dense layers the same way), into two dense layers.
    """
    cutouts = keras.Input(shape=(CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name=CUTOUTS_INPUT, dtype="float32")
    ebv = keras.Input(shape=(), name=EBV_INPUT, dtype="float32")
    x = pixel_scaling(scaling)(cutouts)
    x = _conv_block(x, 32, 5, "block1", padding="valid")  # 28x28
    x = layers.MaxPooling2D(2, name="pool1")(x)  # 14x14
    x = _conv_block(x, 64, 3, "block2")
    x = layers.MaxPooling2D(2, name="pool2")(x)  # 7x7
    x = _conv_block(x, 96, 3, "block3")
    image_features = layers.GlobalAveragePooling2D(name="pool_global")(x)
    mean, scale = photometry
    colour_features = AperturePhotometry(
        list(PHOTOMETRY_RADII_ARCSEC), mean, scale, name="aperture_photometry", dtype="float32"
    )(cutouts)
    foreground = ForegroundInput(name="foreground", dtype="float32")(ebv)
    x = layers.Concatenate(name="features")([image_features, colour_features, foreground])
    x = layers.Dense(256, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.1, name="dropout1")(x)
    x = layers.Dense(128, activation="relu", name="dense2")(x)
    return {CUTOUTS_INPUT: cutouts, EBV_INPUT: ebv}, x


def build_photoz_cnn(
    scaling: InputScaling,
    photometry: tuple[list[float], list[float]],
    z_min: float,
    z_max: float,
    name: str = "photoz_cnn",
) -> keras.Model:
    """The `cnn-ebv` challenger: cutouts and E(B-V) in, redshift out. Its trunk is :func:`_photoz_trunk`;
    the output is the seed's: a sigmoid rescaled to the training redshift range."""
    if not z_max > z_min:
        raise ValueError(f"redshift range must be increasing, got z_min={z_min}, z_max={z_max}")
    inputs, features = _photoz_trunk(scaling, photometry)
    x = layers.Dense(1, activation="sigmoid", name="z_normalised", dtype="float32")(features)
    x = layers.Rescaling(scale=z_max - z_min, offset=z_min, name="redshift_scaling", dtype="float32")(x)
    outputs = layers.Reshape((), name="redshift")(x)
    return keras.Model(inputs, outputs, name=name)


def takes_ebv(model: keras.Model) -> bool:
    """Whether a model has the E(B-V) input (the `cnn-ebv` challenger) or takes cutouts alone."""
    return any(tensor.name == EBV_INPUT for tensor in model.inputs)


def pdf_bins(model: keras.Model) -> RedshiftBins | None:
    """The redshift bins of a PDF model, or None for a point-estimate model (no PDF head)."""
    for layer in model.layers:
        if isinstance(layer, RedshiftPdf):
            return RedshiftBins(tuple(layer.bin_edges))
        if isinstance(layer, keras.Model):  # a model of models: an ensemble's members share their bins
            nested = pdf_bins(layer)
            if nested is not None:
                return nested
    return None


def count_trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def load_model(path: Path | str) -> keras.Model:
    """Load a saved ``.keras`` model; importing this module registers :class:`BandStretch` and
    :class:`RedshiftPdf`."""
    return keras.models.load_model(Path(path), compile=False)
