"""Reading RAIL's qp ensembles into the system's bins, and the errors of a stage that cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import qp

from astrospect.models.rail.stages import RailStageError, ensemble_pdfs, ensemble_point, stage_class
from astrospect.pdf.bins import RedshiftBins

pytestmark = pytest.mark.unit

BINS = RedshiftBins.uniform(0.0, 0.7, 70)


def test_a_gaussian_ensemble_is_binned_by_its_cdf_with_the_tails_in_the_end_bins() -> None:
    ensemble = qp.Ensemble(
        qp.stats.norm,
        data={"loc": np.array([[0.3], [0.02], [0.69]]), "scale": np.array([[0.05], [0.03], [0.05]])},
    )
    pdfs = ensemble_pdfs(ensemble, BINS)
    cdf = ensemble.cdf(BINS.edge_array)
    np.testing.assert_allclose(pdfs.probabilities[:, 1:-1], np.diff(cdf, axis=1)[:, 1:-1], atol=1e-12)
    # below 0 and above 0.7 the mass joins the end bins, as RedshiftBins.histogram puts outliers there
    np.testing.assert_allclose(pdfs.probabilities[1, 0], cdf[1, 1], atol=1e-12)
    np.testing.assert_allclose(pdfs.probabilities[2, -1], 1.0 - cdf[2, -2], atol=1e-12)
    np.testing.assert_allclose(pdfs.probabilities.sum(axis=1), 1.0)


def test_a_missing_point_estimate_and_a_missing_extra_are_named() -> None:
    ensemble = qp.Ensemble(qp.stats.norm, data={"loc": np.array([[0.3]]), "scale": np.array([[0.05]])})
    with pytest.raises(KeyError, match="no 'zmedian' point estimate"):
        ensemble_point(ensemble, "zmedian")
    with pytest.raises(ModuleNotFoundError, match="need the `rail` extra"):
        stage_class("rail.estimation.algos.not_a_code:NotAnEstimator")


def test_the_stage_error_names_the_stage_and_the_challenger() -> None:
    error = RailStageError("DNFEstimator", "rail-dnf", ValueError("bad table"))
    assert str(error) == "challenger 'rail-dnf': RAIL stage DNFEstimator failed: ValueError: bad table"
    assert (error.stage, error.challenger) == ("DNFEstimator", "rail-dnf")


def test_a_galaxy_the_code_gives_no_answer_for_is_an_error_or_takes_the_given_pdf() -> None:
    # a NaN width: what DNF leaves for a galaxy whose neighbours leave its fit undefined
    ensemble = qp.Ensemble(
        qp.stats.norm, data={"loc": np.array([[0.3], [0.2]]), "scale": np.array([[0.05], [np.nan]])}
    )
    with pytest.raises(ValueError, match=r"not finite for 1 galaxies \(first rows \[1\]\)"):
        ensemble_pdfs(ensemble, BINS)
    prior = BINS.histogram(np.array([0.1, 0.1, 0.4]))
    pdfs = ensemble_pdfs(ensemble, BINS, no_answer=prior)
    np.testing.assert_allclose(pdfs.probabilities[1], prior, atol=1e-12)
    np.testing.assert_allclose(pdfs.probabilities[0], ensemble_pdfs(ensemble[0:1], BINS).probabilities[0])
