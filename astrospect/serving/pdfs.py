"""A PDF champion's answers: its rows through the batcher, their JSON form, and the qp file.

The batcher hands each request one row per cutout (:mod:`astrospect.serving.batching`). For a PDF champion
a row is the cutout's probabilities over the model's bins followed by the seven numbers of its summary
(:meth:`astrospect.pdf.bins.RedshiftPdfs.summary`), computed once per model batch in the model's thread, so the event
loop only slices and formats them. The served redshift is the summary's ``POINT_ESTIMATE`` (the median),
the point estimate evaluation scores, so the two cannot disagree.

The qp file (``predict_file`` with ``format=qp``) is written by :func:`astrospect.pdf.bins.write_qp`, the one qp
writer the CLI uses too, in h5py's layout (``.hdf5``): qp.read picks its reader by the file's suffix.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astrospect.pdf.bins import POINT_ESTIMATE, PdfSummary, RedshiftBins, RedshiftPdfs, write_qp
from astrospect.serving.schemas import RedshiftSummary

SUMMARY_FIELDS = tuple(field.name for field in fields(PdfSummary))  # mean, median, mode, lo68, ..., hi95
QP_FILENAME = "pdfs.hdf5"  # the name the download suggests: qp.read needs the .hdf5 suffix for this layout


def pdf_rows(pdfs: RedshiftPdfs) -> npt.NDArray[np.float64]:
    """(N, n_bins + 7): each cutout's probabilities (rows summing to 1), then its summary numbers."""
    summary = pdfs.summary()
    return np.column_stack([pdfs.probabilities, *(getattr(summary, name) for name in SUMMARY_FIELDS)])


def served_redshift(rows: npt.NDArray[np.float64], bins: RedshiftBins) -> npt.NDArray[np.float64]:
    """The served redshift of each of :func:`pdf_rows`' rows: its summary's ``POINT_ESTIMATE``."""
    return np.asarray(rows[:, bins.n + SUMMARY_FIELDS.index(POINT_ESTIMATE)])


@dataclass(frozen=True)
class ServedPdfs:
    """The PDFs and summaries of one request's cutouts, taken back apart from their rows."""

    pdfs: RedshiftPdfs
    summary: PdfSummary

    @classmethod
    def from_rows(cls, rows: npt.NDArray[np.float64], bins: RedshiftBins) -> ServedPdfs:
        if rows.ndim != 2 or rows.shape[1] != bins.n + len(SUMMARY_FIELDS):
            raise ValueError(
                f"expected PDF rows of {bins.n} + {len(SUMMARY_FIELDS)} numbers, got {rows.shape}"
            )
        columns = rows[:, bins.n :].T
        pdfs = RedshiftPdfs.from_rows(rows[:, : bins.n], bins)  # checked in pdf_rows, before the batcher
        return cls(pdfs, PdfSummary(**dict(zip(SUMMARY_FIELDS, columns, strict=True))))

    @property
    def redshift(self) -> npt.NDArray[np.float64]:
        return self.summary.point(POINT_ESTIMATE)

    def summaries(self) -> list[RedshiftSummary]:
        return [RedshiftSummary.model_validate(record) for record in self.summary.records()]


def qp_file(pdfs: RedshiftPdfs, objid: npt.NDArray[np.int64] | None) -> bytes:
    """The bytes of a qp HDF5 file of the PDFs, with ``objid`` as ancillary data when there is one."""
    with tempfile.TemporaryDirectory(prefix="astrospect-qp-") as folder:
        ancil: dict[str, npt.ArrayLike] | None = None if objid is None else {"objid": objid}
        return write_qp(Path(folder) / QP_FILENAME, pdfs, ancil).read_bytes()


def warm_qp(bins: RedshiftBins) -> float:
    """Import qp and write one file, so the first ``format=qp`` request pays neither; seconds taken.

    Measured in a process that has imported what a worker has (TensorFlow, Keras, BentoML, and through them
    scipy and pandas): 0.26 s, the second file 0.016 s. ``import qp`` alone in a fresh interpreter took
    4.3-5.0 s here: nearly all of it is those shared libraries.
    """
    began = time.perf_counter()
    qp_file(RedshiftPdfs(np.full((1, bins.n), 1.0 / bins.n), bins), np.zeros(1, np.int64))
    return time.perf_counter() - began
