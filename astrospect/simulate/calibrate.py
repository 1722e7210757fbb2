"""Fit the simulator's spectral mixture to real SDSS galaxies: writes ``spectral_mixture.json``.

Deterministic (fixed seeds, no rendering, ~1 minute): run ``python -m astrospect.simulate.calibrate`` and
review the JSON diff. Fitted to colours only, never to a model's result.

1. The calibration galaxies (``sdss_main_sample_calibration.csv``: every band < 20, 0 < z < 0.3) are
   de-reddened by the simulator's mean Galactic E(B-V) (it adds each galaxy's own back) and fitted with
   kcorrect's NNLS at their spectroscopic redshifts: each becomes the shares of rest-frame r light of
   kcorrect's five templates.
2. **Template zero-points**: the median real-minus-template magnitude per band (r = 0), as photo-z template
   codes derive them from spectroscopic samples. kcorrect's templates make u-g ~0.05 mag too blue at
   fixed g-r; without this the colours cannot reach the real ones at all.
3. A **Gaussian mixture** (scikit-learn, MIXTURE_COMPONENTS full-covariance components) over (z, r, the
   four additive log-ratios of the shares): the simulator draws each galaxy's mix conditional on its z
   and r. With the typical galaxy's shares per redshift bin (for the K-correction of the selection) and
   the red galaxies' shares (toward which bulges move).

Then it draws a catalogue from the fresh model (true magnitudes, no images) and logs the figures
synth-check judges on the cutouts, at catalogue level: only a quick look, the cutouts decide.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.mixture import GaussianMixture

from astrospect.settings import BANDS, get_logger
from astrospect.simulate import population, spectra
from astrospect.simulate.targets import load_calibration_galaxies, load_targets

log = get_logger(__name__)

MIXTURE_COMPONENTS = 30
LOG_RATIO_FLOOR = 0.02  # light shares are floored at 2% before log-ratios: NNLS gives many exact zeros
# Relative magnitude errors the NNLS fit weights the bands by: typical SDSS model-magnitude errors at r ~ 17.
FIT_MAG_ERRORS = np.array([0.05, 0.02, 0.02, 0.02, 0.03])
RED_QUANTILE = 0.75  # the red galaxies: the reddest quarter in rest-frame g-r
SEED = 20240
SIGNIFICANT_DIGITS = 7


def fit_shares(
    magnitudes: npt.NDArray[np.float64], redshift: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """kcorrect NNLS fits of de-reddened SDSS magnitudes: light shares (n, 5) and template magnitudes (n, 5)."""
    dereddened = magnitudes - population.SF11_COEFFICIENTS * population.EBV_MEAN
    maggies = 10.0 ** (-0.4 * (dereddened + spectra.SDSS_TO_AB_OFFSET_MAG))
    ivar = 1.0 / (0.4 * np.log(10.0) * FIT_MAG_ERRORS * maggies) ** 2
    coeffs = np.asarray(spectra.sdss_fitter().fit_coeffs(redshift=redshift, maggies=maggies, ivar=ivar))  # type: ignore[attr-defined]
    grid = spectra.template_grid()
    light = coeffs * grid.maggies[0, spectra.R_BAND, : spectra.N_DEFAULT_TEMPLATES]
    shares = light / light.sum(axis=1, keepdims=True)
    model = grid.observed_maggies(redshift, population.shares_to_mix(grid, shares), np.zeros(len(redshift)))
    template_mags = -2.5 * np.log10(model)
    template_mags += (dereddened[:, spectra.R_BAND] - template_mags[:, spectra.R_BAND])[:, None]
    return shares, template_mags


def fit_mixture() -> dict[str, object]:
    real = load_calibration_galaxies()
    magnitudes = real[list(BANDS)].to_numpy(dtype=np.float64)
    z = real["redshift"].to_numpy(dtype=np.float64)
    log.info("fitting kcorrect mixes to %d real galaxies", len(real))
    shares, template_mags = fit_shares(magnitudes, z)
    dereddened = magnitudes - population.SF11_COEFFICIENTS * population.EBV_MEAN
    zero_points = np.median(dereddened - template_mags, axis=0)
    log.info("template zero-points (real - template, mag, r = 0): %s", np.round(zero_points, 3))

    log_ratios = population.shares_to_log_ratios(shares, LOG_RATIO_FLOOR)
    data = np.column_stack([z, magnitudes[:, spectra.R_BAND], log_ratios])
    centre, scale = data.mean(axis=0), data.std(axis=0)
    mixture = GaussianMixture(
        MIXTURE_COMPONENTS, covariance_type="full", reg_covar=1e-4, max_iter=1000, random_state=SEED
    ).fit((data - centre) / scale)
    log.info("Gaussian mixture: %d components, converged %s", MIXTURE_COMPONENTS, mixture.converged_)

    grid = spectra.template_grid()
    colour = population.rest_g_r(grid, population.shares_to_mix(grid, shares))
    bins = load_targets().bins
    knot_z, knot_shares = [], []
    for lo, hi in zip(bins["z_lo"], bins["z_hi"], strict=True):
        inside = (z >= lo) & (z < hi)
        if inside.sum() >= 20:
            knot_z.append(float(np.median(z[inside])))
            knot_shares.append(shares[inside].mean(axis=0))
    red = colour >= np.quantile(colour, RED_QUANTILE)
    return {
        "weights": mixture.weights_,
        "means": mixture.means_ * scale + centre,
        "covariances": mixture.covariances_ * np.outer(scale, scale)[None],
        "log_ratio_floor": LOG_RATIO_FLOOR,
        "zero_points": zero_points - zero_points[spectra.R_BAND],
        "knot_redshift": np.array(knot_z),
        "knot_shares": np.array(knot_shares),
        "red_shares": shares[red].mean(axis=0),
        "rest_g_r_mean": float(colour.mean()),
        "rest_g_r_std": float(colour.std()),
    }


def _rounded(value: object) -> object:
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist())
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def write_mixture(fitted: dict[str, object], path: Path = population.MIXTURE_JSON) -> None:
    document = {
        "about": (
            "Gaussian mixture over (z, r, additive log-ratios of kcorrect default-v4 light shares), fitted "
            "to the SDSS calibration galaxies by `python -m astrospect.simulate.calibrate`; see that module."
        ),
        **{key: _rounded(value) for key, value in fitted.items()},
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    log.info("wrote %s", path)


def catalogue_look(n: int) -> str:
    """Figures of synth-check on a catalogue drawn from the model (true magnitudes, no images)."""
    from astrospect.simulate import check

    population.population_model.cache_clear()
    model = population.population_model()
    galaxies = population.draw_population(model, np.random.default_rng(SEED), n)
    catalogue = check.catalogue_from_magnitudes(
        galaxies.magnitudes, galaxies.redshift, galaxies.disk_q, galaxies.bulge_fraction
    )
    return check.render_report(check.compare(catalogue))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--look", type=int, default=20000, help="galaxies for the catalogue-level look")
    arguments = parser.parse_args()
    write_mixture(fit_mixture())
    log.info(
        "catalogue-level look (true magnitudes and axis ratios, no images):\n%s",
        catalogue_look(arguments.look),
    )


if __name__ == "__main__":
    main()
