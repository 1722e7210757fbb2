"""The PDF baselines every PDF figure stands beside, on the same redshift bins, as PDFs of redshifts.

- The N(z) null: every galaxy gets the training set's redshift histogram. It knows nothing about a galaxy,
  yet its PIT is flat by construction on a holdout drawn like the training set; Schmidt et al. (2020, the
  LSST DESC PDF challenge) found it beats most codes on PIT-based metrics, so PIT is never judged alone.
- The colour k-NN PDF: the histogram of the k nearest training galaxies' redshifts in colour space. The
  neighbours come from the colour baseline (``astrospect.models.baselines``); this module only bins them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs


def nz_null_pdf(z_train: npt.ArrayLike, bins: RedshiftBins, n_galaxies: int) -> RedshiftPdfs:
    """The training redshift histogram as the PDF of each of ``n_galaxies`` galaxies."""
    return RedshiftPdfs(np.tile(bins.histogram(z_train), (n_galaxies, 1)), bins)


def neighbour_histograms(z_neighbours: npt.NDArray[np.float64], bins: RedshiftBins) -> RedshiftPdfs:
    """Each galaxy's histogram of its k neighbours' redshifts (N, k), equal weights, as its PDF."""
    n, k = z_neighbours.shape
    index = bins.index(z_neighbours)
    probs = np.zeros((n, bins.n))
    np.add.at(probs, (np.repeat(np.arange(n), k), index.ravel()), 1.0 / k)
    return RedshiftPdfs(probs, bins)
