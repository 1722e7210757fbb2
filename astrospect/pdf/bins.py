"""Redshift probability densities: the fixed redshift bins, point estimates and intervals, and qp files.

A PDF here is an array of probabilities over fixed redshift bins, shape (N, n_bins), each row summing to 1:
the softmax of the PDF CNN, the N(z) null, the colour k-NN's neighbour histogram. Within a bin the density
is flat, so the CDF is linear across each bin; that is qp's ``hist`` parameterisation, and every quantile
and interval here follows it, so our summaries and a qp / RAIL user's agree.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

PointEstimate = Literal["mean", "median", "mode"]
POINT_ESTIMATES: tuple[PointEstimate, ...] = ("mean", "median", "mode")
# The point redshift a PDF challenger reports, evaluation and serving alike: the median was best or tied
# on every measured run (docs/explanation/studies.md); the mode, a 0.0025-wide argmax, was worst.
POINT_ESTIMATE: PointEstimate = "median"
_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; anything further off is not a PDF


@dataclass(frozen=True)
class RedshiftBins:
    """Fixed redshift bins: ``edges`` increasing, ``n`` = len(edges) - 1."""

    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 3:
            raise ValueError(f"redshift bins need at least 3 edges (2 bins), got {edges.size}")
        if not np.all(np.diff(edges) > 0):
            raise ValueError("redshift bin edges must be strictly increasing")

    @classmethod
    def uniform(cls, z_min: float, z_max: float, n: int) -> RedshiftBins:
        if not z_max > z_min or n < 2:
            raise ValueError(f"need z_max > z_min and n >= 2, got z_min={z_min}, z_max={z_max}, n={n}")
        return cls(tuple(float(v) for v in np.linspace(z_min, z_max, n + 1)))

    @property
    def n(self) -> int:
        return len(self.edges) - 1

    # Cached (read-only): serving summarises every batch, and rebuilding these from the tuple cost more
    # than the arithmetic (measured ~15-20 us each per call for 280 bins).
    @cached_property
    def edge_array(self) -> npt.NDArray[np.float64]:
        return _read_only(np.asarray(self.edges, dtype=np.float64))

    @cached_property
    def centres(self) -> npt.NDArray[np.float64]:
        edges = self.edge_array
        return _read_only(0.5 * (edges[:-1] + edges[1:]))

    @cached_property
    def widths(self) -> npt.NDArray[np.float64]:
        return _read_only(np.diff(self.edge_array))

    def index(self, z: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The bin holding each redshift; values outside the range go to the first or last bin."""
        z = np.asarray(z, dtype=np.float64)
        return np.clip(np.searchsorted(self.edge_array, z, side="right") - 1, 0, self.n - 1).astype(np.int64)

    def histogram(self, z: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """Probabilities (n,) of the redshifts in the bins, outliers in the end bins (the N(z) null PDF)."""
        counts = np.bincount(self.index(z), weights=weights, minlength=self.n).astype(np.float64)
        total = counts.sum()
        if total <= 0:
            raise ValueError("cannot make a redshift histogram of no galaxies")
        return counts / total


def _read_only(array: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    array.flags.writeable = False
    return array


# Chosen on the make-run-sized simulated set (`astrospect synth --n 12000 --seed 1 --lrg-fraction 0.05`):
# - range 0-0.7: the largest spec-z there is 0.52 (99.9th percentile 0.47), the simulator's LRGs reach 0.65,
#   and a PDF's upper tail needs room above its galaxy's redshift;
# - width 0.0025 (280 bins; Pasquet's 0.4/180 is 0.0022): the PDF CNN's 68% half-widths on the holdout are
#   0.011 at their 1st percentile and 0.020 at the median, so a bin is under a quarter of the narrowest
#   PDF and binning (w^2/12 in variance) widens it by < 1%. Against 140 bins of 0.005 (same seed and recipe)
#   it gave a lower CRPS (0.0114 vs 0.0117) and point sigma_MAD (0.0164 vs 0.0177), one pair of runs.
DEFAULT_BINS = RedshiftBins.uniform(0.0, 0.7, 280)


def _quantile_of_cdf(
    at_edges: npt.NDArray[np.float64], bins: RedshiftBins, q: float
) -> npt.NDArray[np.float64]:
    # first edge where the CDF reaches q; the quantile lies in the bin ending there
    upper = np.argmax(at_edges >= q, axis=1)
    upper = np.maximum(upper, 1)
    lower = upper - 1
    rows = np.arange(len(at_edges))
    mass = at_edges[rows, upper] - at_edges[rows, lower]
    fraction = np.where(mass > 0, (q - at_edges[rows, lower]) / np.where(mass > 0, mass, 1.0), 0.0)
    return bins.edge_array[lower] + fraction * bins.widths[lower]


@dataclass
class PdfSummary:
    """Per galaxy: the three point estimates and the central 68% and 95% intervals."""

    mean: npt.NDArray[np.float64]
    median: npt.NDArray[np.float64]
    mode: npt.NDArray[np.float64]
    lo68: npt.NDArray[np.float64]
    hi68: npt.NDArray[np.float64]
    lo95: npt.NDArray[np.float64]
    hi95: npt.NDArray[np.float64]

    def point(self, kind: PointEstimate) -> npt.NDArray[np.float64]:
        """The point estimate ``kind``: what :meth:`RedshiftPdfs.point` gives for the same PDFs."""
        if kind not in POINT_ESTIMATES:
            raise ValueError(f"unknown point estimate {kind!r}; expected one of {POINT_ESTIMATES}")
        return {"mean": self.mean, "median": self.median, "mode": self.mode}[kind]

    def records(self) -> list[dict[str, float | list[float]]]:
        """One JSON-ready dict per galaxy, e.g. for a serving response."""
        return [
            {
                "mean": float(self.mean[i]),
                "median": float(self.median[i]),
                "mode": float(self.mode[i]),
                "interval_68": [float(self.lo68[i]), float(self.hi68[i])],
                "interval_95": [float(self.lo95[i]), float(self.hi95[i])],
            }
            for i in range(len(self.mean))
        ]


@dataclass(frozen=True, eq=False)
class RedshiftPdfs:
    """PDFs over fixed redshift bins, the one PDF value every stage passes on: the softmax of the PDF CNN,
    the N(z) null, the colour k-NN's neighbour histogram, a qp file read back.

    Made by its constructor, which checks once that ``probabilities`` is (N, bins.n), finite, non-negative,
    each row summing to 1 (within float32 round-off), and keeps them renormalised as read-only float64.
    Metrics, plots, serving and qp conversion take the value and trust it; nothing checks it again.
    """

    probabilities: npt.NDArray[np.float64]  # (N, bins.n), read-only, each row sums to 1
    bins: RedshiftBins

    def __post_init__(self) -> None:
        probs = np.asarray(self.probabilities, dtype=np.float64)
        bins = self.bins
        if probs.ndim != 2 or probs.shape[1] != bins.n:
            raise ValueError(f"PDFs must have shape (N, {bins.n}) for {bins.n} bins, got {probs.shape}")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0):
            raise ValueError("PDFs must be finite and non-negative")
        sums = probs.sum(axis=1)
        if np.any(np.abs(sums - 1.0) > _SUM_TOLERANCE):
            worst = int(np.argmax(np.abs(sums - 1.0)))
            raise ValueError(f"PDF {worst} sums to {sums[worst]:.6f}, not 1")
        object.__setattr__(self, "probabilities", _read_only(probs / sums[:, None]))

    @classmethod
    def _already_checked(cls, probabilities: npt.NDArray[np.float64], bins: RedshiftBins) -> RedshiftPdfs:
        """Rows of checked PDFs (a slice, a concatenation): the same value, not checked again."""
        pdfs = object.__new__(cls)
        object.__setattr__(pdfs, "probabilities", _read_only(probabilities))
        object.__setattr__(pdfs, "bins", bins)
        return pdfs

    @classmethod
    def from_rows(cls, probabilities: npt.NDArray[np.float64], bins: RedshiftBins) -> RedshiftPdfs:
        """The PDFs back from rows that were a :class:`RedshiftPdfs`' probabilities and only passed through
        (serving's batcher splits a model batch into its requests' rows): not checked again."""
        return cls._already_checked(np.asarray(probabilities, dtype=np.float64), bins)

    @classmethod
    def concatenate(cls, parts: Sequence[RedshiftPdfs]) -> RedshiftPdfs:
        """One value of the PDFs of ``parts`` in order; they must share their bins."""
        if not parts:
            raise ValueError("no PDFs to concatenate")
        bins = parts[0].bins
        if any(part.bins != bins for part in parts[1:]):
            raise ValueError("cannot concatenate PDFs over different redshift bins")
        return cls._already_checked(np.concatenate([part.probabilities for part in parts]), bins)

    def __len__(self) -> int:
        return len(self.probabilities)

    def __getitem__(self, rows: slice | Sequence[int] | npt.NDArray[np.integer]) -> RedshiftPdfs:
        """The PDFs of ``rows`` (a slice or indices), still checked."""
        return RedshiftPdfs._already_checked(self.probabilities[rows], self.bins)

    @cached_property
    def cdf_at_edges(self) -> npt.NDArray[np.float64]:
        """(N, n_bins + 1): the CDF at every bin edge, 0 at the first and 1 at the last."""
        probs = self.probabilities
        at_edges = np.zeros((len(probs), probs.shape[1] + 1))
        at_edges[:, 1:] = np.cumsum(probs, axis=1)
        at_edges[:, -1] = 1.0
        return _read_only(at_edges)

    def quantile(self, q: float) -> npt.NDArray[np.float64]:
        """The redshift below which each PDF holds probability ``q`` (N,), the inverse of the linear-in-bin
        CDF."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must be in (0, 1), got {q}")
        return _quantile_of_cdf(self.cdf_at_edges, self.bins, q)

    def central_interval(self, level: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The central ``level`` interval of each PDF: from its (1-level)/2 to its (1+level)/2 quantile."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"interval level must be in (0, 1), got {level}")
        return self.quantile((1 - level) / 2), self.quantile((1 + level) / 2)

    def point(self, kind: PointEstimate) -> npt.NDArray[np.float64]:
        """One redshift per PDF, always at bin CENTRES (Pasquet's released code took the mean at the left
        edges, a bias of half a bin)."""
        if kind == "mean":
            return self.probabilities @ self.bins.centres
        if kind == "median":
            return self.quantile(0.5)
        if kind == "mode":
            return self.bins.centres[np.argmax(self.probabilities, axis=1)]
        raise ValueError(f"unknown point estimate {kind!r}; expected one of {POINT_ESTIMATES}")

    def summary(self) -> PdfSummary:
        """The summary of each PDF: the same numbers as :meth:`point` and :meth:`central_interval`, from the
        one CDF for all five quantiles (serving summarises every batch)."""

        def at(q: float) -> npt.NDArray[np.float64]:
            return _quantile_of_cdf(self.cdf_at_edges, self.bins, q)

        return PdfSummary(
            mean=self.point("mean"),
            median=at(0.5),
            mode=self.point("mode"),
            lo68=at((1 - 0.68) / 2),
            hi68=at((1 + 0.68) / 2),
            lo95=at((1 - 0.95) / 2),
            hi95=at((1 + 0.95) / 2),
        )

    @cached_property
    def ensemble(self) -> Any:
        """The PDFs as a ``qp.hist`` ensemble, made once (the PIT and the CDE loss both read it)."""
        return self.to_qp()

    def to_qp(self, ancil: dict[str, npt.ArrayLike] | None = None) -> Any:
        """A ``qp.hist`` ensemble of the PDFs (qp stores densities: probability / bin width), with ``ancil``
        columns (e.g. objid) where given."""
        import qp

        extra = None if ancil is None else {key: np.asarray(value) for key, value in ancil.items()}
        data = {"bins": self.bins.edge_array, "pdfs": self.probabilities / self.bins.widths}
        return qp.Ensemble(qp.hist, data=data, ancil=extra)


# ---- qp: the field's PDF container (LSST DESC), so RAIL reads our PDFs without conversion --------------


def from_qp(ensemble: Any) -> RedshiftPdfs:
    """The PDFs back from a ``qp.hist`` ensemble (checked: a file is outside data)."""
    name = ensemble.metadata["pdf_name"][0]
    name = name.decode() if isinstance(name, bytes) else str(name)
    if name != "hist":
        raise ValueError(f"qp ensemble is parameterised as {name!r}; only 'hist' maps onto redshift bins")
    bins = RedshiftBins(tuple(float(v) for v in np.ravel(ensemble.metadata["bins"])))
    return RedshiftPdfs(np.asarray(ensemble.objdata["pdfs"], dtype=np.float64) * bins.widths, bins)


QP_SUFFIXES = (".hdf5", ".h5")  # qp (tables_io) picks the layout by suffix: h5py's, pandas'; both read back


def write_qp(path: Path, pdfs: RedshiftPdfs, ancil: dict[str, npt.ArrayLike] | None = None) -> Path:
    """Write a qp HDF5 file that ``qp.read`` opens; never replaces an existing file (written aside, then
    linked into place)."""
    path = Path(path)
    if path.suffix not in QP_SUFFIXES:
        raise ValueError(
            f"{path}: a qp HDF5 file needs the suffix .hdf5 or .h5 (qp.read chooses its reader by it)"
        )
    if path.exists():
        raise FileExistsError(f"{path}: already exists; PDFs are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written in a private folder beside the target (same file system, so it can be linked), under a name
    # with one suffix: qp strips the last one, and tables_io, seeing another (".partial" of
    # "x.h5.partial.h5"), would not add ".h5" back and would write the file under another name.
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as aside:
        partial = Path(aside) / f"partial{path.suffix}"
        with warnings.catch_warnings():
            # pandas' .h5 layout pickles qp's two-row metadata table (its name and bin edges) and says so
            warnings.filterwarnings(
                "ignore", message=r"\s*your performance may suffer as PyTables will pickle"
            )
            pdfs.to_qp(ancil).write_to(str(partial))
        os.link(partial, path)  # fails rather than replaces if another writer got there first
    return path


def read_qp(path: Path) -> tuple[RedshiftPdfs, dict[str, npt.NDArray[Any]]]:
    """The PDFs and ancillary columns (e.g. objid) of a qp HDF5 file."""
    import qp

    ensemble = qp.read(str(path))
    ancil = {key: np.asarray(value) for key, value in (ensemble.ancil or {}).items()}
    return from_qp(ensemble), ancil


# ---- training targets ---------------------------------------------------------------------------------


def encode_redshift_bins(z: Any, bins: RedshiftBins, smoothing: float = 0.0) -> Any:
    """Training targets (N, n_bins) for spec-z ``z``: one-hot of the bin holding z, or with ``smoothing``
    > 0 a Gaussian of that standard deviation (in redshift) integrated over each bin and renormalised.

    Written in ``keras.ops``, so the same code runs on numpy arrays and inside a ``tf.data`` map.
    Redshifts outside the bins go to the end bins (training never drops a galaxy for its label).
    """
    import keras

    ops = keras.ops
    edges = ops.convert_to_tensor(bins.edge_array, "float32")
    z = ops.reshape(ops.cast(ops.convert_to_tensor(z), "float32"), (-1, 1))
    if smoothing < 0:
        raise ValueError(f"label smoothing must be >= 0 (a redshift standard deviation), got {smoothing}")
    if smoothing == 0:
        index = ops.clip(ops.sum(ops.cast(z >= edges[None, 1:-1], "int32"), axis=1), 0, bins.n - 1)
        return ops.one_hot(index, bins.n, dtype="float32")
    inner = ops.clip(z, edges[0], edges[-1])
    cdf = 0.5 * (1.0 + ops.erf((edges[None, :] - inner) / (smoothing * np.sqrt(2.0))))
    mass = cdf[:, 1:] - cdf[:, :-1]
    return mass / ops.sum(mass, axis=1, keepdims=True)


def shift_pdfs(probabilities: Any, bins: RedshiftBins, shift: Any) -> Any:
    """The PDFs moved by ``shift`` in redshift, re-binned onto the same uniform bins: each old bin's mass
    splits between the two new bins it overlaps, so at every bin edge the CDF is the shifted CDF exactly;
    mass pushed past an end stays in the end bin. Written in ``keras.ops`` so the model's PDF layer and the calibration fit share it.
    """
    import keras

    ops = keras.ops
    if not np.allclose(bins.widths, bins.widths[0], rtol=1e-6):
        raise ValueError("shifting PDFs needs uniform redshift bins")
    steps = ops.cast(ops.convert_to_tensor(shift), "float32") / float(bins.widths[0])
    whole = ops.floor(steps)
    fraction = steps - whole
    target = ops.arange(bins.n, dtype="int32") + ops.cast(whole, "int32")  # where each old bin's start lands
    near = ops.one_hot(ops.clip(target, 0, bins.n - 1), bins.n, dtype="float32")
    far = ops.one_hot(ops.clip(target + 1, 0, bins.n - 1), bins.n, dtype="float32")
    transfer = (1.0 - fraction) * near + fraction * far  # (old bin, new bin)
    return ops.matmul(ops.cast(probabilities, "float32"), transfer)
