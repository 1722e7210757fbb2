"""The registry's builders for the field's codes: each informs RAIL's informer on the training split and
returns a :class:`~astrospect.models.registry.Trained` whose PDFs come from RAIL's estimator.

What each code is given (docs/reference/field-codes.md):

- FlexZBoost (Izbicki & Lee 2017; RAIL's FlexZBoostInformer/Estimator): colours and r; its informer holds
  back a quarter of the training split to tune its bump removal and sharpening, then refits on all of it.
- CMNN (Graham et al. 2018): colours and their errors; a Gaussian PDF per galaxy.
- DNF (De Vicente et al. 2016): magnitudes and errors; the PDF of its 80 nearest neighbours in its ANF metric.
- BPZ (Benítez 2000; desc-bpz through BPZliteInformer/Estimator): template fitting with the CWW+SB set
  (CWWSB4.list: El, Sbc, Scd, Im, SB3, SB2 and two starburst SSPs) through SDSS ugriz (:mod:`.filters`), on AB
  magnitudes; its prior is the HDFN one (Benítez 2000), in i. The training split informs nothing: fitting
  BPZ's prior needs a broad type per training galaxy, which the shards do not carry.

The point redshift of every code is the median of its own PDF, computed by RAIL's point-estimation mixin
(qp's median, ancillary ``zmedian``), as the system's PDF challengers report their median.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from astrospect.models.rail.catalogue import (
    ERROR_COLUMNS,
    MAG_COLUMNS,
    RAIL_COLOUR_APERTURE_ARCSEC,
    REDSHIFT_COLUMN,
    Table,
    magnitude_columns,
    offset_magnitudes,
    selection_table,
)
from astrospect.models.rail.filters import FILTER_NAMES, bpz_data_dir
from astrospect.models.rail.stages import (
    ensemble_cdf,
    ensemble_point,
    estimate,
    inform,
    pdfs_from_cdf,
    unanswered_rows,
)
from astrospect.models.registry import Trained
from astrospect.pdf.bins import DEFAULT_BINS, POINT_ESTIMATE, RedshiftPdfs
from astrospect.settings import get_logger

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.data.shards import Cutouts
    from astrospect.models.registry import Challenger, TrainConfig

log = get_logger(__name__)
POINT_KEY = "zmedian"  # RAIL's PointEstimationMixin: qp's median of each PDF
# The RAIL grid the interpolated PDFs are evaluated on: the system's bin edges (0-0.7, 281 points).
ZGRID = {"zmin": DEFAULT_BINS.edges[0], "zmax": DEFAULT_BINS.edges[-1], "nzbins": DEFAULT_BINS.n + 1}
# Only non-detections (mag == nondetect_val) read these; luptitudes are always finite, so none occur.
MAG_LIMITS = dict.fromkeys(MAG_COLUMNS, 24.0)
# SDSS's absolute calibration (Padmanabhan et al. 2008: about 2% in u and z, 1% in g, r, i), which BPZ adds
# in quadrature to the photometric errors. Not tuned.
BPZ_ZP_ERRORS = [0.02, 0.01, 0.01, 0.01, 0.02]
_PHOTOMETRY = {
    "bands": list(MAG_COLUMNS),
    "err_bands": list(ERROR_COLUMNS),
    "redshift_col": REDSHIFT_COLUMN,
    "mag_limits": MAG_LIMITS,
    "nondetect_val": 99.0,
}


@dataclass(frozen=True)
class RailCode:
    """One field code: its RAIL stages and their configuration beyond the photometry columns."""

    label: str
    informer: str  # "module:Class"
    estimator: str
    inform_config: Mapping[str, Any] = field(default_factory=dict)
    estimate_config: Mapping[str, Any] = field(default_factory=dict)
    # whether the stages see AB magnitudes (BPZ's templates are AB) rather than the pixels' SDSS system
    ab_magnitudes: bool = False
    setup: Callable[[TrainConfig], Mapping[str, Any]] | None = None  # extra config needing the out_dir


def _bpz_setup(config: TrainConfig) -> Mapping[str, Any]:
    return {"bpz_ref_data_path": str(bpz_data_dir(config.out_dir / "bpz-data"))}


CODES: dict[str, RailCode] = {
    "flexzboost": RailCode(
        "FlexZBoost (RAIL)",
        "rail.estimation.algos.flexzboost:FlexZBoostInformer",
        "rail.estimation.algos.flexzboost:FlexZBoostEstimator",
        inform_config={"ref_band": "mag_r_sdss", **ZGRID},
        estimate_config={"ref_band": "mag_r_sdss", "qp_representation": "interp"},
    ),
    "cmnn": RailCode(
        "CMNN (RAIL)",
        "rail.estimation.algos.cmnn:CMNNInformer",
        "rail.estimation.algos.cmnn:CMNNEstimator",
    ),
    "dnf": RailCode(
        "DNF (RAIL)",
        "rail.estimation.algos.dnf:DNFInformer",
        "rail.estimation.algos.dnf:DNFEstimator",
    ),
    "bpz": RailCode(
        "BPZ (RAIL, desc-bpz)",
        "rail.estimation.algos.bpz_lite:BPZliteInformer",
        "rail.estimation.algos.bpz_lite:BPZliteEstimator",
        inform_config={"ref_band": "mag_i_sdss", "output_hdfn": True, "nt_array": [1, 2, 5]},
        estimate_config={
            "ref_band": "mag_i_sdss",
            "filter_list": list(FILTER_NAMES),
            "spectra_file": "CWWSB4.list",
            "zp_errors": BPZ_ZP_ERRORS,
            "replace_error_vals": [0.1] * len(MAG_COLUMNS),
            "dz": float(DEFAULT_BINS.widths[0]),
        },
        ab_magnitudes=True,
        setup=_bpz_setup,
    ),
}


def to_ab(table: Table) -> Table:
    """The table's magnitudes in the AB system, with kcorrect's SDSS-to-AB offsets (as the simulator uses)."""
    # imported here: astrospect.simulate's package loads the whole simulator
    from astrospect.simulate.spectra import SDSS_TO_AB_OFFSET_MAG

    return offset_magnitudes(table, SDSS_TO_AB_OFFSET_MAG)


@dataclass
class RailPredictor:
    """A fitted code: its informed model handle and how to run its estimator on a batch of cutouts."""

    challenger: str
    code: RailCode
    model: Any
    estimate_config: Mapping[str, Any]
    # What a galaxy the code gives no answer for gets: the training redshift distribution (the N(z) null's
    # PDF, and its median as the point), as a catalogue user falls back to the prior. Counted and logged.
    no_answer: npt.NDArray[np.float64]

    def table(self, images: npt.NDArray[np.floating]) -> Table:
        return self._offset(magnitude_columns(images))

    def _offset(self, table: Table) -> Table:
        return to_ab(table) if self.code.ab_magnitudes else table

    def ensemble(self, table: Table) -> Any:
        return estimate(self.code.estimator, self.challenger, self.model, table, self.estimate_config)

    def predict(self, cutouts: Cutouts) -> tuple[npt.NDArray[np.float32], RedshiftPdfs]:
        """Point redshifts (the PDF's median, RAIL's) and PDFs over the system's bins for a batch."""
        ensemble = self.ensemble(self.table(cutouts.images))
        cdf = ensemble_cdf(ensemble, DEFAULT_BINS)  # evaluated once: for the PDFs and for the unanswered rows
        pdfs = pdfs_from_cdf(cdf, DEFAULT_BINS, no_answer=self.no_answer)
        points = ensemble_point(ensemble, POINT_KEY)
        unanswered = np.union1d(unanswered_rows(cdf), unanswered_rows(points))
        if unanswered.size:
            points = points.copy()
            # a row without a PDF has the N(z) by now (pdfs_from_cdf); a row without a point, its PDF's median
            points[unanswered] = pdfs.point(POINT_ESTIMATE)[unanswered]
            log.warning(
                "%s: %s gave no answer for %d of %d galaxies (rows %s); they get the training N(z)",
                self.challenger,
                self.code.estimator.rpartition(":")[2],
                unanswered.size,
                len(points),
                unanswered[:5].tolist(),
            )
        return points.astype(np.float32), pdfs


class RailPredictions:
    """A fitted code's point and PDF predictions per batch. Evaluation asks for both of the same batch, so
    the estimator runs once per batch; the batch itself is held (not its id, which a later batch could
    reuse) until the next one."""

    def __init__(self, predictor: RailPredictor) -> None:
        self.predictor = predictor
        self._last: tuple[Cutouts, tuple[npt.NDArray[np.float32], RedshiftPdfs]] | None = None

    def _predicted(self, cutouts: Cutouts) -> tuple[npt.NDArray[np.float32], RedshiftPdfs]:
        if self._last is None or self._last[0] is not cutouts:
            self._last = (cutouts, self.predictor.predict(cutouts))
        return self._last[1]

    def point(self, cutouts: Cutouts) -> npt.NDArray[np.float32]:
        return self._predicted(cutouts)[0]

    def pdfs(self, cutouts: Cutouts) -> RedshiftPdfs:
        return self._predicted(cutouts)[1]


def fit_rail_code(code_name: str, challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """Inform ``CODES[code_name]`` on the training split; its Trained, predicting through RAIL's estimator."""
    code = CODES[code_name]
    extra = dict(code.setup(config)) if code.setup is not None else {}
    train = selection_table(splits.train)
    if code.ab_magnitudes:
        train = to_ab(train)
    model = inform(code.informer, challenger.name, train, {**_PHOTOMETRY, **code.inform_config, **extra})
    estimate_config = {
        **_PHOTOMETRY,
        **ZGRID,
        "calculated_point_estimates": [POINT_KEY],
        **code.estimate_config,
        **extra,
    }
    no_answer = DEFAULT_BINS.histogram(train[REDSHIFT_COLUMN])
    predictor = RailPredictor(challenger.name, code, model, estimate_config, no_answer)
    log.info(
        "%s: %s informed on %d training galaxies", challenger.name, code.label, len(train[REDSHIFT_COLUMN])
    )
    predictions = RailPredictions(predictor)
    return Trained(
        challenger=challenger,
        predict=predictions.point,
        predict_pdf=predictions.pdfs,
        bins=DEFAULT_BINS,
        params={
            "model": code.label,
            "clipping": splits.clipping,
            "informer": code.informer.rpartition(":")[2],
            "estimator": code.estimator.rpartition(":")[2],
            "colour_aperture_arcsec": RAIL_COLOUR_APERTURE_ARCSEC,
            "point_estimate": f"RAIL {POINT_KEY}",
        },
        n_train=len(splits.train),
        n_val=len(splits.val),
    )


def fit_flexzboost(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    return fit_rail_code("flexzboost", challenger, splits, config)


def fit_cmnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    return fit_rail_code("cmnn", challenger, splits, config)


def fit_dnf(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    return fit_rail_code("dnf", challenger, splits, config)


def fit_bpz(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    return fit_rail_code("bpz", challenger, splits, config)
