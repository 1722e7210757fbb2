"""The `pasquet` challenger: the network of Pasquet et al. 2019 (A&A 621, A26), adapted to 32x32 cutouts.

Their network, as published (their Fig. 3 and the code they released with it): a 5x5 convolution with 64
filters, 2x2 average pooling, two inception blocks, pooling, two more, pooling, a last inception block
without its 5x5 branch, then E(B-V) concatenated to the flattened features, two dense layers of 1096 units
and a softmax over 180 redshift bins; PReLU after every convolution. Each inception block runs four branches
side by side on the same input and concatenates them: a 1x1 convolution; 1x1 then 3x3; 1x1 then 5x5; and
1x1 then a 2x2 average pool (stride 1). The 1x1 convolutions in front of the wide kernels ("reductions") keep
the 3x3 and 5x5 convolutions cheap.

What changed here, and why:

- **One pooling stage fewer.** Their 64x64 SDSS stamps are pooled to 32x32 before the first inception
  block. The shards' cutouts are 32x32 at the same 0.396" pixels (the centre of their stamps), so the first
  pooling is dropped: the inception blocks see the same 32x32, 16x16 and 8x8 maps, covering the same
  12.7" x 12.7" of sky as in their network after its first pooling, and keep their widths.
- **Our softmax head, not theirs.** The last layer is the PDF CNN's (:func:`astrospect.models.cnn.build_pdf_cnn`):
  logits over DEFAULT_BINS (280 bins on 0-0.7, where they used 180 on 0-0.4: our simulated galaxies
  reach 0.7), biases started at half the training log N(z), and a temperature and shift fitted on the
  validation split (:mod:`astrospect.models.calibration`). Their point estimate was the PDF's mean; ours is
  the system's POINT_ESTIMATE, the same for every PDF challenger.
- **Our pixel scaling and recipe.** Raw nanomaggies go through the fitted asinh stretch every CNN here
  uses, and training is the shared recipe (AdamW, warm-up and cosine, weight averaging, early stopping on
  validation: :func:`astrospect.models.train.train`); they trained with plain momentum SGD for a fixed
  number of steps. Their dense layers use ReLU and no dropout; so do these (AdamW's weight decay is the
  only regulariser beyond the recipe's early stopping).
- **No in-model aperture photometry.** Unlike `pdf` and `cnn-ebv`, the network gets pixels and E(B-V)
  alone, as theirs did: the test is whether the deeper network learns the colours itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import numpy.typing as npt
from keras import layers

from astrospect.data.shards import CUTOUTS_INPUT, EBV_INPUT
from astrospect.models.cnn import (
    PDF_LOGITS,
    PDF_OUTPUT,
    PRIOR_BIAS_FRACTION,
    ForegroundInput,
    InputScaling,
    RedshiftPdf,
    count_trainable_params,
    fit_input_scaling,
    pixel_scaling,
)
from astrospect.models.registry import Trained
from astrospect.pdf.bins import RedshiftBins
from astrospect.settings import CUTOUT_SIZE, N_BANDS

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.models.registry import Challenger, TrainConfig

# (1x1 reduction filters, branch filters) of each inception block, as Pasquet et al. 2019 published them.
INCEPTION_WIDTHS = ((48, 64), (64, 92), (92, 128), (92, 128), (92, 128))
STEM_FILTERS = 64
DENSE_UNITS = 1096
_PRIOR_FLOOR = 1e-4  # as the PDF CNN's head: an empty bin starts at log(1e-4) times the fraction


def _conv(x: keras.KerasTensor, filters: int, kernel: int, name: str) -> keras.KerasTensor:
    """Convolution ("same" padding) then PReLU, one slope per channel, as in their network."""
    x = layers.Conv2D(filters, kernel, padding="same", name=f"{name}_conv")(x)
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def inception_block(
    x: keras.KerasTensor, reduction: int, filters: int, name: str, with_5x5: bool = True
) -> keras.KerasTensor:
    """Four branches on the same input, concatenated on channels: ``filters`` (1x1), ``filters`` (1x1 then
    3x3), ``filters`` (1x1 then 5x5; left out at 8x8, where it would see most of the map) and ``reduction``
    (1x1 then a 2x2 stride-1 average pool)."""
    branches = [_conv(x, filters, 1, f"{name}_1x1")]
    branches.append(_conv(_conv(x, reduction, 1, f"{name}_3x3_reduce"), filters, 3, f"{name}_3x3"))
    if with_5x5:
        branches.append(_conv(_conv(x, reduction, 1, f"{name}_5x5_reduce"), filters, 5, f"{name}_5x5"))
    pooled = _conv(x, reduction, 1, f"{name}_pool_reduce")
    branches.append(layers.AveragePooling2D(2, strides=1, padding="same", name=f"{name}_pool")(pooled))
    return layers.Concatenate(name=f"{name}_concat")(branches)


def build_pasquet_cnn(
    scaling: InputScaling,
    bins: RedshiftBins,
    prior: npt.NDArray[np.floating] | None = None,
    name: str = "pasquet_cnn",
) -> keras.Model:
    """Cutouts (N, 32, 32, 5) and E(B-V) (N,) in, PDFs over ``bins`` out (the layer names of the PDF CNN's
    head, so its calibration, prediction and serving apply unchanged)."""
    cutouts = keras.Input(shape=(CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name=CUTOUTS_INPUT, dtype="float32")
    ebv = keras.Input(shape=(), name=EBV_INPUT, dtype="float32")
    x = pixel_scaling(scaling)(cutouts)
    x = _conv(x, STEM_FILTERS, 5, "stem")  # 32x32: their first pooling is not needed (module docstring)
    (r0, f0), (r1, f1), (r2, f2), (r3, f3), (r4, f4) = INCEPTION_WIDTHS
    x = inception_block(x, r0, f0, "inception0")
    x = inception_block(x, r1, f1, "inception1")
    x = layers.AveragePooling2D(2, name="pool1")(x)  # 16x16
    x = inception_block(x, r2, f2, "inception2")
    x = inception_block(x, r3, f3, "inception3")
    x = layers.AveragePooling2D(2, name="pool2")(x)  # 8x8
    x = inception_block(x, r4, f4, "inception4", with_5x5=False)
    x = layers.Flatten(name="flatten")(x)
    # E(B-V) joins the flattened image features before the dense layers, as in their network; the
    # zero-plus-mask fallback for shards without it is the system's (ForegroundInput).
    foreground = ForegroundInput(name="foreground", dtype="float32")(ebv)
    x = layers.Concatenate(name="features")([x, foreground])
    for k in (1, 2):
        x = layers.Dense(DENSE_UNITS, activation="relu", name=f"dense{k}")(x)
    bias: Any = "zeros"
    if prior is not None:
        if np.shape(prior) != (bins.n,):
            raise ValueError(
                f"prior: expected {bins.n} probabilities (one per bin), got shape {np.shape(prior)}"
            )
        log_prior = np.log(np.maximum(np.asarray(prior, np.float64), _PRIOR_FLOOR))
        bias = keras.initializers.Constant(PRIOR_BIAS_FRACTION * log_prior)
    logits = layers.Dense(bins.n, name=PDF_LOGITS, dtype="float32", bias_initializer=bias)(x)
    outputs = RedshiftPdf(list(bins.edges), name=PDF_OUTPUT, dtype="float32")(logits)
    return keras.Model({CUTOUTS_INPUT: cutouts, EBV_INPUT: ebv}, outputs, name=name)


def fit_pasquet_cnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for `pasquet`: :func:`build_pasquet_cnn` trained by the shared loop on
    cross-entropy against the binned redshift, then calibrated on the validation split: what
    :func:`astrospect.models.train.fit_pdf_cnn` does for `pdf`, with this network in place of its trunk."""
    from astrospect.models.train import calibrated_pdf_trained, train
    from astrospect.pdf.bins import DEFAULT_BINS, encode_redshift_bins

    bins = DEFAULT_BINS
    result = train(
        splits,
        config,
        name=challenger.name,
        build=lambda sample, _: build_pasquet_cnn(
            fit_input_scaling(sample, config.stretch), bins, prior=bins.histogram(splits.train.redshift)
        ),
        loss="categorical_crossentropy",
        target=lambda z: encode_redshift_bins(z, bins),
    )
    return calibrated_pdf_trained(
        challenger, result, splits, config, bins, {"trainable_params": count_trainable_params(result.model)}
    )
