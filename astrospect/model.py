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

from astrospect.pdf import RedshiftBins, shift_pdfs
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


def _seed_trunk(scaling: InputScaling) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The seed's layers from raw cutouts to its last 64 features: the part every CNN head shares."""
    params = asdict(scaling)
    inputs = keras.Input(shape=(CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name="cutouts", dtype="float32")
    x = BandStretch(
        params["stretch"],
        list(params["softening"]),
        list(params["lo"]),
        list(params["hi"]),
        name="pixel_scaling",
        dtype="float32",
    )(inputs)
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
    :func:`astrospect.calibration.calibrate_pdf_model` and saved with the weights, so the saved model gives
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


def build_pdf_cnn(scaling: InputScaling, bins: RedshiftBins, name: str = "pdf_cnn") -> keras.Model:
    """The seed's trunk with a softmax head over ``bins``: raw cutouts in, (N, bins.n) probabilities out."""
    inputs, features = _seed_trunk(scaling)
    logits = layers.Dense(bins.n, name=PDF_LOGITS, dtype="float32")(features)
    outputs = RedshiftPdf(list(bins.edges), name=PDF_OUTPUT, dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


def pdf_bins(model: keras.Model) -> RedshiftBins | None:
    """The redshift bins of a PDF model, or None for a point-estimate model (no PDF head)."""
    for layer in model.layers:
        if isinstance(layer, RedshiftPdf):
            return RedshiftBins(tuple(layer.bin_edges))
    return None


def count_trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def load_model(path: Path | str) -> keras.Model:
    """Load a saved ``.keras`` model; importing this module registers :class:`BandStretch` and
    :class:`RedshiftPdf`."""
    return keras.models.load_model(Path(path), compile=False)
