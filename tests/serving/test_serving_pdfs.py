"""A PDF champion's answers through the batcher: rows that come apart into the same PDFs and summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import qp

from astrospect.pdf.bins import DEFAULT_BINS, RedshiftPdfs
from astrospect.serving.pdfs import QP_FILENAME, SUMMARY_FIELDS, ServedPdfs, pdf_rows, qp_file

pytestmark = pytest.mark.unit


def softmax_pdfs(n: int, seed: int = 0) -> np.ndarray:
    """Peaked float32 PDFs, as the model's softmax gives them (rows sum to 1 within float32)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 0.5, (n, 1))
    logits = -0.5 * ((DEFAULT_BINS.centres - z) / 0.02) ** 2 + rng.normal(0, 0.3, (n, DEFAULT_BINS.n))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def test_rows_come_apart_into_the_pdfs_their_summary_and_the_median() -> None:
    raw = softmax_pdfs(12)
    rows = pdf_rows(RedshiftPdfs(raw, DEFAULT_BINS))
    assert rows.shape == (12, DEFAULT_BINS.n + len(SUMMARY_FIELDS))
    served = ServedPdfs.from_rows(rows[3:7], DEFAULT_BINS)  # the batcher hands a request a slice
    np.testing.assert_allclose(served.pdfs.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(served.pdfs.probabilities, raw[3:7].astype(np.float64), rtol=1e-6)
    expected = RedshiftPdfs(raw[3:7], DEFAULT_BINS).summary()
    for name in SUMMARY_FIELDS:
        np.testing.assert_allclose(getattr(served.summary, name), getattr(expected, name), atol=1e-12)
    np.testing.assert_allclose(
        served.redshift, RedshiftPdfs(raw[3:7], DEFAULT_BINS).point("median"), atol=1e-12
    )
    (first, *_) = served.summaries()
    assert first.median == served.redshift[0]
    assert first.interval_68 == [served.summary.lo68[0], served.summary.hi68[0]]


def test_rows_of_another_width_are_refused() -> None:
    with pytest.raises(ValueError, match="expected PDF rows of 280 \\+ 7 numbers"):
        ServedPdfs.from_rows(np.zeros((2, DEFAULT_BINS.n)), DEFAULT_BINS)


def test_the_qp_file_opens_in_qp_with_the_same_pdfs_and_objids(tmp_path: Path) -> None:
    served = ServedPdfs.from_rows(pdf_rows(RedshiftPdfs(softmax_pdfs(5, seed=2), DEFAULT_BINS)), DEFAULT_BINS)
    objid = np.arange(5, dtype=np.int64) + 1_237_660_000_000_000_000
    path = tmp_path / QP_FILENAME  # what a client saves the download as
    path.write_bytes(qp_file(served.pdfs, objid))
    ensemble = qp.read(str(path))
    np.testing.assert_allclose(
        ensemble.objdata["pdfs"] * DEFAULT_BINS.widths, served.pdfs.probabilities, rtol=1e-12
    )
    assert np.array_equal(ensemble.ancil["objid"], objid)
    without_ids = tmp_path / "npy.hdf5"
    without_ids.write_bytes(qp_file(served.pdfs, None))
    assert qp.read(str(without_ids)).ancil is None
