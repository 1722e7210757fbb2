"""Colour calibration: does a shard's photometry sit on the colours of accepted data, and if not, which band's
zero point is off and by how much (issue 21).

A zero-point error in band b adds the same offset to every galaxy's b magnitude, so it moves the two colours
that hold b in opposite directions (``+d`` in r: g-r by ``-d``, r-i by ``+d``). The galaxy mix moves colours
too, but along the galaxy locus: a redder galaxy is redder in every colour at once. So each colour is judged
by its *residual about the reference's prediction from the redshift and the three other colours*: at fixed
redshift, the other colours say where on the locus (red sequence, blue cloud) a galaxy sits, and the
residual is what its place cannot explain. An all-red or all-blue shard keeps residuals near 0 (measured:
``expectations/README.md``); a zero-point error does not, since it moves a colour against its neighbours.

Per shard and colour the statistic is the median residual over the cutouts the reference covers; its
tolerance is ``floor + 4 sqrt(C/N)``: the floor the largest median residual of an all-red or all-blue
selection of clean galaxies (what the galaxy mix can still move), and ``C`` the per-galaxy covariance of the
four medians (measured on clean shards, times their size), so ``sqrt(C/N)`` the clean-shard scatter at N. The offset is then fitted
band by band: the response of the four residuals to ``+1`` mag in band b, from the model itself, against the
shard's residuals, weighted by that covariance; the band whose one-offset fit leaves the least chi-square is
named, with the offset and its standard error. ``expectations/colour_reference.json`` holds the model, its
support and the scatter; ``harness/colour_reference.py`` writes it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.settings import BANDS

COLOUR_REFERENCE_FILE = "colour_reference.json"
COLOURS = tuple(f"{blue}-{red}" for blue, red in itertools.pairwise(BANDS))  # u-g, g-r, r-i, i-z
# Fewer usable cutouts than this and the median means nothing: the shard's colour calibration is not judged
# (its shifts are 0); the size checks of the summary suite judge such a shard.
MIN_GALAXIES = 20
RESPONSE_STEP_MAG = 0.1  # the finite difference of the residuals' response to a zero point
FIT_ITERATIONS = 3  # the response is re-taken about the last estimate: large offsets are not quite linear
SCAN_MAG = np.round(np.arange(-3.0, 3.01, 0.2), 2)  # the scan: a 10x flux error is 2.5 mag


def colour_key(colour: str) -> str:
    """``u-g`` as a column suffix: ``u_g``."""
    return colour.replace("-", "_")


def band_direction(band: str) -> npt.NDArray[np.float64]:
    """How the four colours move for ``+1`` mag (measured - true) in ``band``: +1 where it is the blue band
    of the colour, -1 where it is the red one."""
    b = BANDS.index(band)
    direction = np.zeros(len(COLOURS))
    if b < len(COLOURS):
        direction[b] = 1.0
    if b > 0:
        direction[b - 1] = -1.0
    return direction


def design(redshift: npt.NDArray[np.float64], others: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The model's terms from the redshift and the three other colours (N, 3): a quadratic in all four,
    plus z^3, z^4 and z^3 times each colour, since the colours turn over quickly with redshift (the 4000 A
    break crossing g and r) while their dependence on the other colours stays smooth."""
    variables = [redshift, *others.T]
    terms = [np.ones_like(redshift), redshift**3, redshift**4]
    for degree in (1, 2):
        for combo in itertools.combinations_with_replacement(range(len(variables)), degree):
            terms.append(np.prod([variables[i] for i in combo], axis=0))
    terms.extend(redshift**3 * colour for colour in others.T)
    return np.column_stack(terms)


def colours_of(table: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The (N, 4) aperture colours of a summary table (``colour_mag_<band>`` of astrospect.data.summaries)."""
    mags = table[[f"colour_mag_{band}" for band in BANDS]].to_numpy(dtype=np.float64)
    return mags[:, :-1] - mags[:, 1:]


@dataclass(frozen=True)
class Estimate:
    """The zero-point error the shard's colours point to: one band, its offset (measured - true, mag) and the
    offset's standard error; ``chi2`` of that one-offset fit and ``chi2_none`` of no offset at all (4
    colours: a chi2 near 3 after the fit means the one band explains the colours)."""

    band: str
    offset_mag: float
    uncertainty_mag: float
    chi2: float
    chi2_none: float
    runner_up: str  # the next-best band, and how much worse it fits
    runner_up_chi2: float

    def text(self) -> str:
        return f"zero point of {self.band} off by {self.offset_mag:+.3f} +- {self.uncertainty_mag:.3f} mag"


@dataclass(frozen=True)
class ColourCheck:
    """One shard's colour calibration: per colour the median residual (mag), and how far it goes beyond
    what the galaxy mix can explain, in clean-shard standard deviations at this size; and the offset fit."""

    galaxies: int  # cutouts inside the reference's support
    shifts: dict[str, float]
    sigmas: dict[str, float]  # the standard deviation of a clean shard's shift at this size
    floors: dict[str, float]  # the most an unusual galaxy mix moves it (mag)
    estimate: Estimate | None  # None when too few cutouts are usable, or not asked for

    def significance(self, colour: str) -> float:
        """The shift beyond the mix floor over the clean-shard sigma, signed (0 within the floor). The floor is
        a bound (the largest shift of an all-red or all-blue selection), not a scatter, so it is taken off
        the shift rather than added in quadrature to the noise."""
        shift, sigma = self.shifts[colour], self.sigmas[colour]
        excess = max(abs(shift) - self.floors[colour], 0.0)
        return float(np.sign(shift) * excess / sigma) if sigma > 0 else 0.0

    def columns(self) -> dict[str, Any]:
        """The statistics table's columns (``shard_statistics.json`` judges the ``colour_shift_sigma_*``)."""
        row: dict[str, Any] = {"colour_galaxies": self.galaxies}
        for colour in COLOURS:
            key = colour_key(colour)
            row[f"colour_shift_{key}"] = self.shifts[colour]
            row[f"colour_shift_sigma_{key}"] = self.significance(colour)
        return row

    def to_dict(self) -> dict[str, Any]:
        return {
            "galaxies": self.galaxies,
            "colour_shift_mag": self.shifts,
            "clean_shard_sigma_mag": self.sigmas,
            "mix_floor_mag": self.floors,
            "beyond_floor_sigma": {colour: self.significance(colour) for colour in COLOURS},
            "estimate": None if self.estimate is None else self.estimate.__dict__,
        }


@dataclass(frozen=True)
class ColourReference:
    """The shipped colour model (``expectations/colour_reference.json``)."""

    coefficients: dict[str, npt.NDArray[np.float64]]  # per colour, for design(z, the other colours)
    redshift_range: tuple[float, float]
    colour_ranges: dict[str, tuple[float, float]]  # the predictors' fitted ranges (clipped to them)
    galaxy_covariance: npt.NDArray[np.float64]  # (4, 4): covariance of the 4 medians times the shard size
    mix_floor: dict[str, float]  # mag: what an all-red or all-blue shard's median residual reaches
    source: str

    @classmethod
    def load(cls, path: Path) -> ColourReference:
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot be read as JSON: {error}") from error

        def field(*keys: str) -> Any:
            value = spec
            for key in keys:
                if not isinstance(value, dict) or key not in value:
                    raise ValueError(f"{path}: field '{'.'.join(keys)}' is missing")
                value = value[key]
            return value

        def pair(*keys: str) -> tuple[float, float]:
            try:
                low, high = (float(v) for v in field(*keys))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}: field '{'.'.join(keys)}': expected [low, high]") from error
            return low, high

        if list(field("colours")) != list(COLOURS):
            raise ValueError(f"{path}: field 'colours': expected {list(COLOURS)}, got {field('colours')}")
        n_terms = design(np.zeros(1), np.zeros((1, 3))).shape[1]
        coefficients = {}
        for colour in COLOURS:
            values = np.asarray(field("coefficients", colour), dtype=np.float64)
            if values.shape != (n_terms,) or not np.isfinite(values).all():
                raise ValueError(f"{path}: field 'coefficients.{colour}': expected {n_terms} finite numbers")
            coefficients[colour] = values
        covariance = np.asarray(field("scatter", "galaxy_covariance"), dtype=np.float64)
        if covariance.shape != (4, 4) or not np.isfinite(covariance).all():
            raise ValueError(f"{path}: field 'scatter.galaxy_covariance': expected a finite 4x4 matrix")
        return cls(
            coefficients,
            pair("support", "redshift"),
            {colour: pair("support", "colours", colour) for colour in COLOURS},
            covariance,
            {colour: float(field("scatter", "mix_floor", colour)) for colour in COLOURS},
            str(field("source")),
        )

    # -- the model ------------------------------------------------------------------------------------------
    def residuals(
        self, redshift: npt.NDArray[np.float64], colours: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """(N, 4) residuals of each colour about the model's prediction from z and the other colours. The
        predicting colours are clipped to the ranges the model was fitted on (a polynomial must not be read
        outside them); the judged colour never is, so a large offset gives a large residual rather than
        taking its cutouts out of the check."""
        low = np.array([self.colour_ranges[colour][0] for colour in COLOURS])
        high = np.array([self.colour_ranges[colour][1] for colour in COLOURS])
        clipped = np.clip(colours, low, high)
        out = np.empty_like(colours)
        for k, colour in enumerate(COLOURS):
            others = np.delete(clipped, k, axis=1)
            out[:, k] = colours[:, k] - design(redshift, others) @ self.coefficients[colour]
        return out

    def usable(
        self, redshift: npt.NDArray[np.float64], colours: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Cutouts the model covers: finite colours, a redshift inside the range it was fitted on. (Not the
        colour ranges: a zero-point error of a few tenths would push most cutouts out of a narrow one, i-z,
        and leave the shard unjudged; :meth:`residuals` clips the predictors instead.)"""
        low, high = self.redshift_range
        inside = (
            np.isfinite(redshift) & (redshift >= low) & (redshift <= high) & np.isfinite(colours).all(axis=1)
        )
        return np.asarray(inside)

    def shard_covariance(self, galaxies: int) -> npt.NDArray[np.float64]:
        """The covariance of a clean shard's four median residuals at this size, with the mix floor added
        as if it were a scatter: the offset fit's weights and uncertainty allow for an unusual mix."""
        floor = np.array([self.mix_floor[colour] for colour in COLOURS])
        return self.galaxy_covariance / max(galaxies, 1) + np.diag(floor**2)

    # -- a shard ----------------------------------------------------------------------------------------------
    def check(self, table: pd.DataFrame, with_estimate: bool = True) -> ColourCheck:
        """The colour calibration of one shard's summary table; the offset fit only ``with_estimate`` (the
        gate needs it for a quarantined shard's report, not for every shard that passes)."""
        redshift = table["redshift"].to_numpy(dtype=np.float64)
        colours = colours_of(table)
        keep = self.usable(redshift, colours)
        redshift, colours = redshift[keep], colours[keep]
        n = len(redshift)
        if n < MIN_GALAXIES:
            zeros = dict.fromkeys(COLOURS, 0.0)
            return ColourCheck(n, zeros, dict.fromkeys(COLOURS, 1.0), self.mix_floor, None)
        shifts = np.median(self.residuals(redshift, colours), axis=0)
        noise = np.sqrt(np.diag(self.galaxy_covariance) / n)
        return ColourCheck(
            n,
            {colour: float(shifts[k]) for k, colour in enumerate(COLOURS)},
            {colour: float(noise[k]) for k, colour in enumerate(COLOURS)},
            self.mix_floor,
            self.estimate(redshift, colours, self.shard_covariance(n)) if with_estimate else None,
        )

    def estimate(
        self,
        redshift: npt.NDArray[np.float64],
        colours: npt.NDArray[np.float64],
        covariance: npt.NDArray[np.float64],
    ) -> Estimate:
        """The one-band zero-point error that best explains the median residuals (generalised least squares
        with the clean-shard covariance), for each band; the best band's fit. Each band's offset starts from
        a coarse scan, since the clipped model is not linear over large offsets (a Gauss-Newton fit from 0
        alone went astray at 0.75 mag in g), then Gauss-Newton steps refine it."""
        weight = np.linalg.inv(covariance)

        def medians(offset: float, direction: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return np.asarray(np.median(self.residuals(redshift, colours - offset * direction), axis=0))

        def chi2_of(left: npt.NDArray[np.float64]) -> float:
            return float(left @ weight @ left)

        chi2_none = chi2_of(medians(0.0, np.zeros(len(COLOURS))))
        fits = []
        for band in BANDS:
            direction = band_direction(band)
            offset = min(SCAN_MAG, key=lambda value: chi2_of(medians(float(value), direction)))
            offset, error = float(offset), np.inf
            for _ in range(FIT_ITERATIONS):
                # The residuals at the offset found so far and their response to a little more of it.
                here = medians(offset, direction)
                corrected = colours - offset * direction
                stepped = self.residuals(redshift, corrected + RESPONSE_STEP_MAG * direction)
                response = np.mean(stepped - self.residuals(redshift, corrected), axis=0) / RESPONSE_STEP_MAG
                information = float(response @ weight @ response)
                if information <= 0:
                    break
                error = 1.0 / np.sqrt(information)
                step = float(response @ weight @ here) / information
                if chi2_of(medians(offset + step, direction)) > chi2_of(here):
                    break  # the linear step overshoots: keep what we have
                offset += step
            fits.append((chi2_of(medians(offset, direction)), band, offset, error))
        fits.sort()
        (chi2, band, offset, error), runner_up = fits[0], fits[1]
        return Estimate(band, float(offset), float(error), chi2, chi2_none, runner_up[1], runner_up[0])


def colour_reference(expectations_dir: Path) -> ColourReference:
    return ColourReference.load(expectations_dir / COLOUR_REFERENCE_FILE)
