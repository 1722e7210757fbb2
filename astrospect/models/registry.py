"""The challenger registry: every model a training session can train, listed in one place.

A *challenger* is a model we train. Each entry says how to build it (its builder, imported only when it
trains, so the Airflow DAG reads this module at parse time without loading TensorFlow), which data
clipping it trains on, what it outputs (a point redshift, or a redshift PDF), and whether it is a
baseline: a baseline is trained, scored and logged beside the others but never registered or promoted.

The DAG's training tasks, the "already trained" short-circuit, the tracking tags, promotion, the report
and the compare view all read this registry. Adding a challenger is one entry here plus its builder
(docs/explanation/architecture.md, "Adding a challenger").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from astrospect.settings import Precision as Precision  # re-exported: train.py imports it from here
from astrospect.settings import Settings

if TYPE_CHECKING:
    import keras
    import numpy as np
    import numpy.typing as npt

    from astrospect.data.clipping import Clipping
    from astrospect.data.dataset import Splits
    from astrospect.data.shards import Cutouts
    from astrospect.models.cnn import Stretch
    from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs

Output = Literal["point", "pdf"]
# What kind of model a challenger is, for the tables that set the CNNs against the field's codes: "cnn" (an
# image network), "code" (a photo-z method on the photometry: the colour k-NN, RAIL's estimators), "null"
# (a reference that knows nothing of the galaxy, such as the N(z) null).
Family = Literal["cnn", "code", "null"]


@dataclass(frozen=True)
class Challenger:
    """One model a session can train."""

    name: str  # the run name, the MLflow tag `challenger`, the DAG task `train_<name>`
    builder: str  # "module:function" called as function(challenger, splits, config) -> Trained
    clipping: Clipping  # which galaxies it trains on
    output: Output = "point"
    baseline: bool = False  # scored and logged, never registered or promoted
    description: str = ""
    # The seed's published holdout figures for this challenger, measured on REAL SDSS galaxies: shown
    # beside ours (simulated) in the report so the pattern can be compared, never the digits.
    published: Mapping[str, float] | None = None
    # None: "code" for a baseline, "cnn" otherwise (see `model_family`); set it where that is wrong.
    family: Family | None = None

    @property
    def model_family(self) -> Family:
        """``family``, or what the entry implies: a baseline is a code, anything else a CNN."""
        if self.family is not None:
            return self.family
        return "code" if self.baseline else "cnn"

    def fit(self, splits: Splits, config: TrainConfig) -> Trained:
        """Train this challenger on ``splits`` (its clipping) with ``config``'s hyperparameters."""
        if splits.clipping != self.clipping:
            raise ValueError(
                f"challenger {self.name!r} trains on the {self.clipping!r} clipping, got {splits.clipping!r} splits"
            )
        module_name, _, function_name = self.builder.partition(":")
        build = getattr(importlib.import_module(module_name), function_name)
        trained = build(self, splits, config)
        if not isinstance(trained, Trained) or trained.challenger != self:
            raise TypeError(f"builder {self.builder} of {self.name!r} must return a Trained for it")
        return trained


@dataclass
class Trained:
    """What a builder returns: a fitted challenger, ready to be scored on the holdout and logged."""

    challenger: Challenger
    # a batch of cutouts (raw pixels, E(B-V) where the shard has it) -> redshift; None for a PDF challenger
    # whose redshift is its PDFs' POINT_ESTIMATE
    predict: Callable[[Cutouts], npt.NDArray[np.float32]] | None
    params: dict[str, Any]  # hyperparameters and choices made on validation; logged as run parameters
    n_train: int
    n_val: int
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch curves; none for a k-NN
    run_metrics: dict[str, float] = field(default_factory=dict)  # e.g. images_per_second, val_sigma_mad
    keras_model: keras.Model | None = None  # what the registry holds; None for a baseline
    input_example: npt.NDArray[np.float32] | None = None  # a few raw cutouts, for the model signature
    model_path: Path | None = None  # the saved model, where there is one
    # A challenger whose output is "pdf" gives PDFs over `bins` per batch of cutouts; its
    # `predict` is its own point (a k-NN's mean) or None, the PDF's point estimate. `uncalibrated_pdf`,
    # where there is calibration, reports the holdout before it as well.
    predict_pdf: Callable[[Cutouts], RedshiftPdfs] | None = None
    uncalibrated_pdf: Callable[[Cutouts], RedshiftPdfs] | None = None
    bins: RedshiftBins | None = None

    def __post_init__(self) -> None:
        if (self.challenger.output == "pdf") != (self.predict_pdf is not None and self.bins is not None):
            raise ValueError(
                f"{self.challenger.name}: output {self.challenger.output!r} needs predict_pdf and bins "
                "exactly when it is 'pdf'"
            )


EMA_MAX_SPAN = 0.15  # the weight average spans at most this fraction of the schedule (TrainConfig)


@dataclass
class TrainConfig:
    """The training hyperparameters of a session; logged as the CNN runs' parameters."""

    out_dir: Path  # a new folder per challenger: model.keras, history.json, train_config.json, plots/
    # The length of the learning-rate schedule (early stopping may end sooner) and the seed: the settings'
    # defaults (ASTROSPECT_EPOCHS, ASTROSPECT_SEED), which callers pass on from load_settings().
    epochs: int = Settings.default("epochs")
    batch_size: int = 156
    patience: int = 10  # epochs without a new best smoothed validation loss, counted after the warm-up
    learning_rate: float = 1e-3  # the peak, reached at the end of the warm-up
    warmup_epochs: int = 2
    weight_decay: float = 1e-4  # AdamW's decoupled decay; biases and batch-norm parameters are exempt
    clipnorm: float = 1.0  # global gradient norm
    smoothing: int = 3  # early stopping watches the median validation loss of this many last epochs
    # Polyak averaging of the weights, per step (0.99: about the last 100 steps); validation, early stopping
    # and the saved model use the average. None trains without it.
    ema_momentum: float | None = 0.99
    seed: int = Settings.default("seed")
    stretch: Stretch = "asinh"
    augment: bool = True  # random rotations/flips of training cutouts
    shuffle_buffer: int = 8192
    precision: Precision = Settings.default("precision")
    # Members of the `pdf-ensemble` challenger (astrospect.models.ensemble), each a `pdf` trained with its
    # own seed. 5, as Lakshminarayanan et al. 2017 chose: most of an ensemble's gain in likelihood and
    # calibration comes from its first few members, and each one costs a whole training.
    ensemble_members: int = 5

    def ema_momentum_for(self, steps_per_epoch: int) -> float | None:
        """The averaging momentum actually used: the average spans at most EMA_MAX_SPAN of the schedule's
        steps, so a short run (a smoke test's few dozen steps) does not end near its initial weights."""
        if self.ema_momentum is None:
            return None
        span = EMA_MAX_SPAN * max(1, self.epochs * steps_per_epoch)
        return min(self.ema_momentum, max(0.0, 1.0 - 1.0 / span))

    @property
    def warmup(self) -> int:
        """The warm-up actually used: at most a quarter of the schedule, so a short run (a smoke test's 2 or
        3 epochs) starts at the peak rate instead of spending its few steps warming up."""
        return min(self.warmup_epochs, self.epochs // 4)

    def params(self) -> dict[str, Any]:
        """Flat, loggable parameters (the output folder is local to one machine, so not one of them)."""
        values = asdict(self)
        values.pop("out_dir")
        return values


# The seed's published results (full / clipped) on real SDSS data.
_SEED_FULL = {
    "mae": 0.0304,
    "mse": 0.0017,
    "r2": 0.9041,
    "sigma_mad": 0.0269,
    "catastrophic_outlier_frac": 0.0012,
}
_SEED_CLIPPED = {"mae": 0.0556, "mse": 0.0056, "r2": 0.8826, "sigma_mad": 0.0427, "catastrophic_outlier_frac": 0.0128}  # fmt: skip

_REGISTRY: dict[str, Challenger] = {}


def register(challenger: Challenger) -> Challenger:
    """Add a challenger; its name must be new (a name is its identity in MLflow and in the DAG)."""
    if challenger.name in _REGISTRY:
        raise ValueError(f"a challenger named {challenger.name!r} is already registered")
    if not challenger.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"challenger name {challenger.name!r}: use letters, digits, '-' and '_' only")
    _REGISTRY[challenger.name] = challenger
    return challenger


def unregister(name: str) -> None:
    """Remove a challenger (tests that register a temporary one)."""
    del _REGISTRY[name]


def get(name: str) -> Challenger:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no challenger named {name!r}; registered: {', '.join(_REGISTRY) or '(none)'}"
        ) from None


def registered() -> tuple[Challenger, ...]:
    """Every registered challenger, in registration order (the order of tables and the compare view)."""
    return tuple(_REGISTRY.values())


def for_session(names: Sequence[str] = ()) -> tuple[Challenger, ...]:
    """The challengers a session trains: ``names`` (``ASTROSPECT_CHALLENGERS``), or every default one."""
    if not names:
        return tuple(c for c in _REGISTRY.values() if c.name in DEFAULT_SESSION)
    unknown = [name for name in names if name not in _REGISTRY]
    if unknown:
        raise KeyError(
            f"ASTROSPECT_CHALLENGERS names unknown challenger(s) {unknown}; registered: {', '.join(_REGISTRY)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"ASTROSPECT_CHALLENGERS lists a challenger twice: {list(names)}")
    return tuple(get(name) for name in names)


register(
    Challenger(
        "full",
        "astrospect.models.train:fit_seed_cnn",
        "full",
        description="the seed CNN, trained on every redshift",
        published=_SEED_FULL,
    )
)
register(
    Challenger(
        "clipped",
        "astrospect.models.train:fit_seed_cnn",
        "clipped",
        description="the seed CNN, trained on z <= 0.4",
        published=_SEED_CLIPPED,
    )
)
register(
    Challenger(
        "cnn-ebv",
        "astrospect.models.train:fit_photoz_cnn",
        "full",
        description="batch-normalised CNN beside in-model aperture photometry, with E(B-V) in the dense layers",
    )
)
register(
    Challenger(
        "pdf",
        "astrospect.models.train:fit_pdf_cnn",
        "full",
        output="pdf",
        description="cnn-ebv's trunk with a softmax over redshift bins, calibrated on validation",
    )
)
register(
    Challenger(
        "baseline-knn-full",
        "astrospect.models.baselines:fit_colour_knn",
        "full",
        output="pdf",
        baseline=True,
        description="k-NN on ugriz aperture colours (aperture and k chosen on validation); PDF: its neighbours",
    )
)
register(
    Challenger(
        "baseline-knn-clipped",
        "astrospect.models.baselines:fit_colour_knn",
        "clipped",
        output="pdf",
        baseline=True,
        description="k-NN on ugriz aperture colours, trained on z <= 0.4",
    )
)
register(
    Challenger(
        "baseline-nz-full",
        "astrospect.models.baselines:fit_nz_null",
        "full",
        output="pdf",
        baseline=True,
        description="the N(z) null: every galaxy gets the training redshift distribution",
        family="null",
    )
)
DEFAULT_SESSION: tuple[str, ...] = (
    "full",
    "clipped",
    "cnn-ebv",
    "pdf",
    "baseline-knn-full",
    "baseline-knn-clipped",
    "baseline-nz-full",
    # The field's codes that fit make run's 15 minutes (docs/reference/field-codes.md has each one's time):
    # the local linear fit (Beck et al. 2016) and RAIL's DNF, the two strongest on sigma_MAD at 12k galaxies.
    # FlexZBoost (about 6 minutes, nearly all its bump/sharpen search), CMNN and BPZ train when named.
    "baseline-local-linear",
    "rail-dnf",
)
DEFAULT_CHALLENGER = "full"  # what `astrospect train` trains unless told
register(
    Challenger(
        "pasquet",
        "astrospect.models.pasquet:fit_pasquet_cnn",
        "full",
        output="pdf",
        description="Pasquet et al. 2019's inception network (pixels and E(B-V)), one pooling stage fewer for"
        " 32x32 cutouts, with the pdf head and its calibration",
    )
)
register(
    Challenger(
        "pdf-ensemble",
        "astrospect.models.ensemble:fit_pdf_ensemble",
        "full",
        output="pdf",
        description="a deep ensemble: TrainConfig.ensemble_members pdf CNNs with their own seeds, PDFs averaged",
    )
)
register(
    Challenger(
        "baseline-local-linear",
        "astrospect.models.local_linear:fit_local_linear",
        "full",
        output="pdf",
        baseline=True,
        family="code",
        description="local linear fit on the k nearest neighbours in ugriz aperture colours and r (Beck et al. "
        "2016, SDSS DR12's photo-z); PDF: a Gaussian of the fit's residual scatter",
    )
)
# The field's photo-z codes through LSST DESC RAIL's own stages (the `rail` extra; models/rail/):
# scored and logged beside the CNNs, never promoted (docs/reference/field-codes.md).
register(
    Challenger(
        "rail-flexzboost",
        "astrospect.models.rail.codes:fit_flexzboost",
        "full",
        output="pdf",
        baseline=True,
        description="FlexZBoost (RAIL) on aperture magnitudes: conditional density by boosted trees",
    )
)
register(
    Challenger(
        "rail-cmnn",
        "astrospect.models.rail.codes:fit_cmnn",
        "full",
        output="pdf",
        baseline=True,
        description="CMNN (RAIL): colour-matched nearest neighbours, a Gaussian PDF per galaxy",
    )
)
register(
    Challenger(
        "rail-dnf",
        "astrospect.models.rail.codes:fit_dnf",
        "full",
        output="pdf",
        baseline=True,
        description="DNF (RAIL): directional neighbourhood fitting on magnitudes",
    )
)
register(
    Challenger(
        "rail-bpz",
        "astrospect.models.rail.codes:fit_bpz",
        "full",
        output="pdf",
        baseline=True,
        description="BPZ (RAIL, desc-bpz): CWW+SB templates through SDSS ugriz, HDFN prior; no training",
    )
)
