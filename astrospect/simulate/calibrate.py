"""Fit the simulator's spectral mixture to real SDSS galaxies: writes ``spectral_mixture.json``.

Deterministic (fixed seeds, no rendering, a few minutes): run ``python -m astrospect.simulate.calibrate``
and review the JSON diff. Fitted to colours only, never to a model's result.

1. The calibration galaxies (``sdss_main_sample_calibration.csv``: every band < 20, 0 < z < 0.3) are
   de-reddened by the simulator's mean Galactic E(B-V) (it adds each galaxy's own back).
2. A **Gaussian mixture** (scikit-learn, full covariance) over (ln z, r, u-g, g-r, r-i, i-z): the simulator
   draws each galaxy's colours from it conditional on its z and r, so the joint colours at each redshift
   and magnitude are the real ones. The redshift enters as ln z: in z itself the nearest galaxies
   (z < 0.03) sat at the edge of every component and drew the colours of z ~ 0.05 galaxies, too red. The
   number of components is chosen by BIC among COMPONENT_CHOICES. A Gaussian mixture rather than a
   normalising flow: conditioning on (z, r) is closed-form, drawing is exact and cheap in every worker, it
   needs no new dependency, and 20,000 galaxies in six dimensions are plenty for it.
3. **Deconvolution.** Real colours already hold the scatter of dust at random inclinations, of line
   strengths and of bulge-to-disk mixes; the simulator adds its own after the warp. So each real galaxy's
   NNLS template mix is given PERTURBATION_DRAWS draws of what the simulator adds
   (:func:`.population.colour_perturbations`), and each component's colour mean and covariance lose the
   responsibility-weighted mean and covariance of those draws (extreme deconvolution with the same
   noise for all of a component's members; eigenvalues floored at MIN_VARIANCE).
4. The warp's bounds: the 0.1 and 99.9 percentiles of real minus NNLS template colours.
5. The typical galaxy's shares per redshift bin (for the K-correction of the selection) and the red
   galaxies' shares (toward which bulges move).
6. **The magnitude weight.** The mixture's r given z is smooth where the real one is not: at 0.2 < z < 0.3
   it drew 13% of the galaxies brighter than r = 17 against the real 6%, and 22% fainter than the main
   sample's 17.77 against 37% (the bluer other target classes), so that bin's median u-g was 0.09 mag too
   red while the colours at each (z, r) matched. So MAGNITUDE_WEIGHT_DRAWS noiseless galaxies are drawn,
   the query cut applied, and in each redshift bin of the calibration targets (step 5's; equal-count
   bins were too wide at the top, where r given z changes fastest: the last spanned 0.17-0.3 and fixed
   only half of the offset) the real over the drawn share of galaxies in MAGNITUDE_WEIGHT_R_BINS
   equal-count r bins (52 real galaxies per cell at 0.2 < z < 0.3, ~14% Poisson noise; hundreds
   elsewhere). The weight multiplies r's density given z; the cut keeps the same share of each cell, so
   one pass suffices.
7. **The redshift weight.** The luminosity function and completeness model give n(z) in shape, not in
   detail: inside the query the drawn sample's median z was 0.075 against the real 0.083, and n(z)
   alone told the two apart (AUC 0.56). So REDSHIFT_WEIGHT_DRAWS noiseless galaxies are drawn from the
   model with its magnitude weight, the query cut applied, and the real over the drawn n(z) taken in bins of
   REDSHIFT_WEIGHT_PER_BIN real galaxies each (equal counts: ~5% Poisson noise per knot). The weight
   multiplies the selection's n(z) (linear between the bins' median redshifts). At fixed z nothing else
   changes: r given z and the colours given (z, r) stay, so the cut keeps the same share at each z and
   one pass suffices.

Then it draws a catalogue from the fresh model (true magnitudes, no images) and logs the figures
synth-check judges on the cutouts, at catalogue level: only a quick look, the cutouts decide.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.mixture import GaussianMixture

from astrospect.settings import BANDS, get_logger
from astrospect.simulate import population, spectra
from astrospect.simulate.dust import EBV_MEAN, SF11_COEFFICIENTS
from astrospect.simulate.mixture import MIXTURE_JSON, NO_MAGNITUDE_WEIGHT, NO_REDSHIFT_WEIGHT, SpectralMixture
from astrospect.simulate.selection import R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST
from astrospect.simulate.targets import COLOURS, load_calibration_galaxies, load_targets, query_cut
from astrospect.simulate.template_fit import (
    FIT_MAG_ERRORS,
    fit_light_shares,
    rest_g_r,
    shares_to_mix,
    template_colours,
)

log = get_logger(__name__)

COMPONENT_CHOICES = (10, 15, 20, 30, 40)
MIXTURE_VERSION = 4  # 4: and the magnitude weight; 3: and the redshift weight; 2: colours with the
# warp's bounds, ln z, deconvolved (1: template shares, z)
RED_QUANTILE = 0.75  # the red galaxies: the reddest quarter in rest-frame g-r
SEED = 20240
SIGNIFICANT_DIGITS = 7
PERTURBATION_DRAWS = 16
MIN_VARIANCE = 1e-5  # mag^2: a deconvolved colour covariance keeps at least this in every direction
REDSHIFT_WEIGHT_DRAWS = 100_000
MAGNITUDE_WEIGHT_DRAWS = 100_000
MAGNITUDE_WEIGHT_R_BINS = 5
REDSHIFT_WEIGHT_PER_BIN = 400
GIVEN_SLICE, COLOUR_SLICE = slice(0, 2), slice(2, 6)


def dereddened_magnitudes(real: pd.DataFrame) -> npt.NDArray[np.float64]:
    magnitudes = real[list(BANDS)].to_numpy(dtype=np.float64)
    return np.asarray(magnitudes - SF11_COEFFICIENTS * EBV_MEAN)


def fit_mixture() -> dict[str, object]:
    real = load_calibration_galaxies()
    magnitudes = dereddened_magnitudes(real)
    z = real["redshift"].to_numpy(dtype=np.float64)
    colours = magnitudes[:, :-1] - magnitudes[:, 1:]
    grid = spectra.template_grid()
    log.info("fitting template mixes to %d real galaxies", len(real))
    shares = fit_light_shares(grid, z, magnitudes)
    mixes = shares_to_mix(grid, shares)
    residuals = colours - template_colours(grid, z, mixes)
    spread = np.percentile(residuals, [16, 50, 84], axis=0)
    log.info(
        "real - template colours (mag; u-g, g-r, r-i, i-z): median %s, p16-p84 half-width %s",
        np.round(spread[1], 3), np.round((spread[2] - spread[0]) / 2, 3),
    )  # fmt: skip

    # r as observed, not de-reddened: it is the apparent r the simulator draws (Galactic extinction included).
    observed_r = real["r"].to_numpy(dtype=np.float64)
    data = np.column_stack([np.log(z), observed_r, colours])
    centre, scale = data.mean(axis=0), data.std(axis=0)
    standardised = (data - centre) / scale
    fits = {
        k: GaussianMixture(k, covariance_type="full", reg_covar=1e-4, max_iter=1000, random_state=SEED).fit(
            standardised
        )
        for k in COMPONENT_CHOICES
    }
    bic = {k: float(fit.bic(standardised)) for k, fit in fits.items()}
    chosen = min(bic, key=bic.__getitem__)
    gmm = fits[chosen]
    log.info("Gaussian mixture BIC by components: %s; chose %d (converged %s)",
             {k: round(v) for k, v in bic.items()}, chosen, gmm.converged_)  # fmt: skip

    colour = rest_g_r(grid, mixes)
    bins = load_targets().bins
    knot_z, knot_shares = [], []
    for lo, hi in zip(bins["z_lo"], bins["z_hi"], strict=True):
        inside = (z >= lo) & (z < hi)
        if inside.sum() >= 20:
            knot_z.append(float(np.median(z[inside])))
            knot_shares.append(shares[inside].mean(axis=0))
    red = colour >= np.quantile(colour, RED_QUANTILE)
    fitted: dict[str, object] = {
        "version": MIXTURE_VERSION,
        "dimensions": ["ln_z", "r", *COLOURS],
        "weights": gmm.weights_,
        "means": gmm.means_ * scale + centre,
        "covariances": gmm.covariances_ * np.outer(scale, scale)[None],
        # Warps beyond what any calibration galaxy needed are not drawn.
        "residual_range": np.percentile(residuals, [0.1, 99.9], axis=0),
        "knot_redshift": np.array(knot_z),
        "knot_shares": np.array(knot_shares),
        "red_shares": shares[red].mean(axis=0),
        "rest_g_r_mean": float(colour.mean()),
        "rest_g_r_std": float(colour.std()),
    }
    # No weights yet: the model each weight is measured on draws the mixture's own r given z and the
    # selection's own n(z).
    unweighted = {**fitted, **NO_REDSHIFT_WEIGHT, **NO_MAGNITUDE_WEIGHT}
    deconvolved = deconvolve(unweighted, gmm.predict_proba(standardised), z, mixes)
    with_r = {
        **deconvolved,
        **magnitude_weight(SpectralMixture.from_document(deconvolved), z, observed_r),
    }
    return {**with_r, **redshift_weight(SpectralMixture.from_document(with_r), z)}


def _drawn_inside_query(mixture: SpectralMixture, n: int) -> population.Population:
    """Of ``n`` noiseless galaxies drawn from ``mixture``'s model (seed SEED), those inside the query."""
    galaxies = population.draw_population(
        population.build_population_model(mixture), np.random.default_rng(SEED), n
    )
    return galaxies.take(np.flatnonzero(query_cut(galaxies.magnitudes, galaxies.redshift)))


def magnitude_weight(
    mixture: SpectralMixture, real_z: npt.NDArray[np.float64], real_r: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float64]]:
    """The weight on the mixture's r given z that makes the drawn sample's r given z inside the query the
    real one (step 6)."""
    drawn = _drawn_inside_query(mixture, MAGNITUDE_WEIGHT_DRAWS)
    drawn_z, drawn_r = drawn.redshift, drawn.magnitudes[:, spectra.R_BAND]
    bins = load_targets().bins
    bins = bins[bins["z_lo"] < real_z.max()]  # the targets' own table runs past the query's 0.3
    z_edges = np.append(bins["z_lo"].to_numpy(dtype=np.float64), float(bins["z_hi"].iloc[-1]))
    r_edges, weights = [], []
    for lo, hi in pairwise(z_edges):
        real_cell, drawn_cell = (
            real_r[(real_z >= lo) & (real_z < hi)],
            drawn_r[(drawn_z >= lo) & (drawn_z < hi)],
        )
        edges = np.quantile(real_cell, np.linspace(0.0, 1.0, MAGNITUDE_WEIGHT_R_BINS + 1))
        edges[0], edges[-1] = R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST
        real_share = np.histogram(real_cell, edges)[0] / len(real_cell)
        drawn_share = np.histogram(drawn_cell, edges)[0] / max(len(drawn_cell), 1)
        if (drawn_share == 0).any():
            empty = int(np.argmax(drawn_share == 0))
            raise ValueError(
                f"magnitude weight: no drawn galaxy in {lo:.4f} <= z < {hi:.4f}, "
                f"{edges[empty]:.2f} <= r < {edges[empty + 1]:.2f} ({MAGNITUDE_WEIGHT_DRAWS} draws); draw more"
            )
        r_edges.append(edges)
        weights.append(real_share / drawn_share)
    weight = np.array(weights)
    log.info(
        "magnitude weight: %d x %d cells, weight %.2f-%.2f (highest redshift bin, bright to faint: %s)",
        len(weight), MAGNITUDE_WEIGHT_R_BINS, weight.min(), weight.max(), np.round(weight[-1], 2),
    )  # fmt: skip
    return {
        "magnitude_weight_z_edges": z_edges,
        "magnitude_weight_r_edges": np.array(r_edges),
        "magnitude_weight": weight,
    }


def redshift_weight(
    mixture: SpectralMixture, real_z: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float64]]:
    """The weight on the selection's n(z) that makes the drawn sample's n(z) inside the query the real
    one (step 7)."""
    drawn_z = _drawn_inside_query(mixture, REDSHIFT_WEIGHT_DRAWS).redshift
    n_bins = len(real_z) // REDSHIFT_WEIGHT_PER_BIN
    edges = np.quantile(real_z, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, max(float(edges[-1]), float(drawn_z.max())) + 1e-9
    real_share = np.histogram(real_z, edges)[0] / len(real_z)
    drawn_share = np.histogram(drawn_z, edges)[0] / len(drawn_z)
    if (drawn_share == 0).any():
        empty = int(np.argmax(drawn_share == 0))
        raise ValueError(
            f"redshift weight: no drawn galaxy in {edges[empty]:.4f} <= z < {edges[empty + 1]:.4f} "
            f"({REDSHIFT_WEIGHT_DRAWS} draws); draw more"
        )
    weight = real_share / drawn_share
    knots = np.array([np.median(real_z[(real_z >= lo) & (real_z < hi)]) for lo, hi in pairwise(edges)])
    log.info(
        "redshift weight: %d bins of %d real galaxies, weight %.2f-%.2f (median drawn z %.4f, real %.4f)",
        n_bins, REDSHIFT_WEIGHT_PER_BIN, weight.min(), weight.max(), np.median(drawn_z), np.median(real_z),
    )  # fmt: skip
    return {"redshift_weight_z": knots, "redshift_weight": weight / np.average(weight, weights=drawn_share)}


def deconvolve(
    fitted: dict[str, object],
    responsibility: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    mixes: npt.NDArray[np.float64],
) -> dict[str, object]:
    """Remove from each component the colour shifts the simulator adds after the warp (see step 3)."""
    grid = spectra.template_grid()

    mixture = SpectralMixture.from_document(fitted)
    rng = np.random.default_rng(SEED)
    draws = np.stack(
        [population.colour_perturbations(grid, mixture, z, mixes, rng) for _ in range(PERTURBATION_DRAWS)]
    )  # (draws, n, 4)
    weight = responsibility / responsibility.sum(axis=0, keepdims=True)  # (n, K): no component is empty
    shift = np.einsum("nk,dnc->kc", weight, draws) / PERTURBATION_DRAWS
    # The real colours also carry SDSS's photometric errors, and the rendered cutouts get their own noise.
    band_variance = FIT_MAG_ERRORS**2
    noise = np.diag(band_variance[:-1] + band_variance[1:])
    noise -= np.diag(band_variance[1:-1], 1) + np.diag(
        band_variance[1:-1], -1
    )  # adjacent colours share a band
    means = np.array(fitted["means"], dtype=np.float64)
    covariances = np.array(fitted["covariances"], dtype=np.float64)
    for k in range(len(means)):
        offsets = draws - shift[k]
        added = np.einsum("n,dni,dnj->ij", weight[:, k], offsets, offsets) / PERTURBATION_DRAWS + noise
        means[k, COLOUR_SLICE] -= shift[k]
        # The perturbations do not depend on (ln z, r) within a component, so they come off the colours'
        # covariance given (ln z, r), which must stay positive: that is where the floor applies.
        cov = covariances[k]
        explained = cov[COLOUR_SLICE, GIVEN_SLICE] @ np.linalg.solve(
            cov[GIVEN_SLICE, GIVEN_SLICE], cov[GIVEN_SLICE, COLOUR_SLICE]
        )
        values, vectors = np.linalg.eigh(cov[COLOUR_SLICE, COLOUR_SLICE] - explained - added)
        floored = (vectors * np.maximum(values, MIN_VARIANCE)) @ vectors.T
        cov[COLOUR_SLICE, COLOUR_SLICE] = floored + explained
    log.info(
        "deconvolved: perturbation rms per colour (mag) %s",
        np.round(np.sqrt(np.einsum("dnc,dnc->c", draws, draws) / draws.shape[0] / draws.shape[1]), 3),
    )
    return {**fitted, "means": means, "covariances": covariances}


def _rounded(value: object) -> object:
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist())
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def write_mixture(fitted: dict[str, object], path: Path = MIXTURE_JSON) -> None:
    document = {
        "about": (
            "Gaussian mixture over (ln z, r, de-reddened u-g, g-r, r-i, i-z), deconvolved of the simulator's own "
            "dust, line and bulge-disk scatter, and the bounds of the spectral warp; fitted to the SDSS "
            "calibration galaxies by `python -m astrospect.simulate.calibrate`; see that module."
        ),
        **{key: _rounded(value) for key, value in fitted.items()},
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    log.info("wrote %s", path)


def catalogue_look(n: int) -> str:
    """Figures of synth-check on a catalogue drawn from the model (true magnitudes, no images)."""
    from astrospect.simulate import check
    from astrospect.simulate.catalogue import catalogue_from_magnitudes

    population.population_model.cache_clear()
    model = population.population_model()
    galaxies = population.draw_population(model, np.random.default_rng(SEED), n)
    catalogue = catalogue_from_magnitudes(
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
