"""SDSS-like cutout simulator: GalSim profiles and PSF, kcorrect spectra, astropy cosmology (README#the-simulator).

``synthesize(out_dir, n, seed, ...)`` writes shards in the real format plus a ``truth/`` group;
``synth_check(folder)`` measures them from the cutouts against the real SDSS calibration figures.
"""

from __future__ import annotations

from astrospect.simulate.check import passed, render_report, synth_check
from astrospect.simulate.synth import synthesize

__all__ = ["passed", "render_report", "synth_check", "synthesize"]
