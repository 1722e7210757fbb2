"""``synth-check``: measure a simulated catalogue FROM ITS CUTOUTS and compare it with real SDSS galaxies.

The catalogues and how the cutouts are measured: :mod:`.catalogue`.

**Comparison.** Both sides inside the real query (:func:`query_cut`: every band < 20, 0 < z < 0.3), against
the calibration galaxies. One tidy table, one row per figure, each with its target:

* (a) per redshift bin the median u-g, g-r, r-i, i-z within 0.05 mag (bins holding more than 250
  calibration galaxies; p16/p84 and r shown, not judged); redshift p5/p50/p95 within 0.02; r p50 within 0.3;
* (b) a classifier two-sample test: scikit-learn's HistGradientBoostingClassifier, 5-fold, on (u-g, g-r,
  r-i, i-z, z) with equal numbers from each side: AUC <= 0.60 (0.5: indistinguishable). Beside it, not
  judged here: its floor, real against real (two halves of the calibration galaxies); and where the shards
  carry their truth, the noiseless catalogue (true magnitudes: target <= 0.57, and its per-bin medians)
  with ITS floor (:func:`noiseless_floor_auc`): real colours are measured, so they carry photometric noise
  that true magnitudes lack, and a perfect simulator's noiseless catalogue differs from them by just that.
  The floor is real against real plus the cutouts' own colour noise (measured minus true colours). And
  per redshift bin, the same classifier on the colours alone (redshift fixed by the bin): how much of
  the AUC is the joint colours rather than n(z);
* (c) a 20-nearest-neighbour regressor on the four colours, trained and tested on simulated galaxies: its
  sigma_MAD within 10% of the same regressor on the calibration galaxies at the same training size;
* (d) the inclination trend: between the most- and least-inclined quartiles (moment axis ratio) of
  disk-dominated galaxies at 0.02 < z < 0.1, g-r and u-r (relative to the median at their redshift) differ
  by Masters et al. (2010)'s 0.1 and 0.2 mag, within 30%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.metrics import metric_table
from astrospect.data.shards import inspect_shard, resolve_shards
from astrospect.settings import BANDS
from astrospect.simulate.catalogue import cut_to_query, measure_catalogue, noiseless_catalogue, real_catalogue
from astrospect.simulate.targets import COLOURS, PERCENTILES, load_targets, query_cut

COLOUR_TOLERANCE_MAG = 0.05
MIN_REAL_GALAXIES = 250  # calibration galaxies in a bin for its medians to be judged
REDSHIFT_TOLERANCE = 0.02
R_MEDIAN_TOLERANCE_MAG = 0.3
JUDGED_REDSHIFT_QUANTILES = ("p5", "p50", "p95")
REDSHIFT_LEVELS = ("p5", "p16", "p50", "p84", "p95")
QUANTITIES = (*COLOURS, "r")
CLASSIFIER_FEATURES = (*COLOURS, "redshift")
AUC_INDISTINGUISHABLE, AUC_TOLERANCE = 0.5, 0.10  # target AUC <= 0.60 on the cutouts
KNN_NEIGHBOURS, KNN_TRAIN, KNN_TEST, KNN_RELATIVE_TOLERANCE = 20, 9600, 4737, 0.10
MIN_SIMULATED = 500  # fewer simulated galaxies than this: (b)-(d) are shown, not judged
DISK_DOMINATED_BULGE_FRACTION = 0.5
INCLINATION_Z_RANGE = (0.02, 0.1)
INCLINATION_Z_STEP = 0.01  # colours are taken relative to the median in redshift slices this wide
MASTERS_TREND = {"g-r": 0.1, "u-r": 0.2}  # Masters et al. (2010, MNRAS 404, 792): edge-on minus face-on
MASTERS_RELATIVE_TOLERANCE = 0.3
SEED = 0


def real_against_real_auc() -> float:
    """The classifier's floor: two random halves of the calibration galaxies against each other."""
    real = real_catalogue()
    order = np.random.default_rng(SEED).permutation(len(real))
    half = len(real) // 2
    return two_sample_auc(real.iloc[order[:half]], real.iloc[order[half:]])


def measurement_noise(catalogue: pd.DataFrame, noiseless: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The cutouts' colour noise (n, 4): measured minus true u-g, g-r, r-i, i-z of the same galaxies (rows
    in the same order), inside the real query on the measured magnitudes, each colour centred on its median
    (the measurement's small colour offsets are not noise)."""
    if len(catalogue) != len(noiseless):
        raise ValueError(
            f"measured catalogue ({len(catalogue)} rows) and noiseless catalogue ({len(noiseless)} rows) "
            "must hold the same galaxies in the same order"
        )
    inside = query_cut(catalogue[list(BANDS)].to_numpy(), catalogue["redshift"].to_numpy())
    noise = (catalogue[list(COLOURS)].to_numpy() - noiseless[list(COLOURS)].to_numpy())[inside]
    noise = noise[np.isfinite(noise).all(axis=1)]
    return np.asarray(noise - np.median(noise, axis=0))


def noiseless_floor_auc(noise: npt.NDArray[np.float64]) -> float:
    """The noiseless AUC a perfect simulator would score: one half of the calibration galaxies against the
    other half with colour noise added, each galaxy taking the noise of a random row of ``noise`` (n, 4).
    An estimate: it adds the noise to colours that already carry SDSS's, where a perfect noiseless
    catalogue would lack SDSS's own."""
    real = real_catalogue()
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(real))
    half = len(real) // 2
    noisy = real.iloc[order[half:]].copy()
    noisy[list(COLOURS)] += noise[rng.integers(len(noise), size=len(noisy))]
    return two_sample_auc(noisy, real.iloc[order[:half]])


def compare(catalogue: pd.DataFrame, noiseless: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy comparison table: scope, quantity, statistic, simulated, real, offset, tolerance, judged,
    passed, n_sim, n_real. Simulated galaxies are cut like the real ones first. ``noiseless`` (the same
    galaxies' true magnitudes) adds its median colours per bin (statistic ``noiseless p50``) and AUCs,
    shown but not judged."""
    sim = cut_to_query(catalogue)
    real = real_catalogue()
    rows: list[dict[str, object]] = []
    if noiseless is not None:
        rows += _bin_medians(cut_to_query(noiseless), real, "noiseless p50")
    rows += _bin_medians(sim, real)
    for level in REDSHIFT_LEVELS:
        tolerance = REDSHIFT_TOLERANCE if level in JUDGED_REDSHIFT_QUANTILES else None
        rows.append(_whole("redshift", level, sim, real, tolerance))
    rows.append(_whole("r", "p50", sim, real, R_MEDIAN_TOLERANCE_MAG))
    enough = len(sim) >= MIN_SIMULATED
    auc = _row("all", "classifier AUC", "5-fold", two_sample_auc(sim, real), AUC_INDISTINGUISHABLE,
               AUC_TOLERANCE if enough else None, len(sim), len(real))  # fmt: skip
    if auc["judged"]:  # one-sided: below 0.5 is as indistinguishable as 0.5 (duplicates across folds)
        auc["passed"] = bool(float(auc["offset"]) <= AUC_TOLERANCE)  # type: ignore[arg-type]
    rows.append(auc)
    rows.append(
        _row("all", "classifier AUC", "real vs real", real_against_real_auc(), AUC_INDISTINGUISHABLE, None,
             len(real) // 2, len(real) - len(real) // 2)
    )  # fmt: skip
    if noiseless is not None:
        table = cut_to_query(noiseless)
        rows.append(
            _row("all", "classifier AUC", "noiseless", two_sample_auc(table, real), AUC_INDISTINGUISHABLE,
                 None, len(table), len(real))
        )  # fmt: skip
        noise = measurement_noise(catalogue, noiseless)
        if len(noise) >= MIN_SIMULATED:
            rows.append(
                _row("all", "classifier AUC", "noiseless floor", noiseless_floor_auc(noise),
                     AUC_INDISTINGUISHABLE, None, len(noise), len(real) // 2)
            )  # fmt: skip
    n_test = min(KNN_TEST, len(sim) // 3)
    n_train = min(KNN_TRAIN, len(sim) - n_test)
    real_knn = knn_sigma_mad(real, n_train, n_test)
    rows.append(
        _row("all", "20-NN sigma_MAD", f"train {n_train}", knn_sigma_mad(sim, n_train, n_test), real_knn,
             KNN_RELATIVE_TOLERANCE * real_knn if enough else None, len(sim), len(real))
    )  # fmt: skip
    trends, n_disks = inclination_trend(sim)
    for colour, target in MASTERS_TREND.items():
        judged = enough and n_disks >= MIN_SIMULATED // 4
        rows.append(
            _row("all", f"inclination d({colour})", "q quartiles", trends[colour], target,
                 MASTERS_RELATIVE_TOLERANCE * target if judged else None, n_disks, -1)
        )  # fmt: skip
    rows += _bin_aucs(sim, real)
    return pd.DataFrame(rows)


def _bin_medians(sim: pd.DataFrame, real: pd.DataFrame, prefix: str = "") -> list[dict[str, object]]:
    """Per redshift bin, p16/p50/p84 of each colour and r (only the rendered p50 colours judged)."""
    rows = []
    for _, edges in load_targets().bins.iterrows():
        lo, hi = float(edges["z_lo"]), float(edges["z_hi"])
        sim_bin = sim[(sim["redshift"] >= lo) & (sim["redshift"] < hi)]
        real_bin = real[(real["redshift"] >= lo) & (real["redshift"] < hi)]
        if real_bin.empty:
            continue
        for quantity in QUANTITIES:
            for percentile in PERCENTILES if not prefix else ("p50",):
                judged = (
                    not prefix
                    and percentile == "p50"
                    and quantity in COLOURS
                    and len(real_bin) > MIN_REAL_GALAXIES
                )
                rows.append(
                    _row(
                        f"{lo:.2f}-{hi:.2f}", quantity, prefix or percentile,
                        _percentile(sim_bin[quantity].to_numpy(), percentile),
                        _percentile(real_bin[quantity].to_numpy(), percentile),
                        COLOUR_TOLERANCE_MAG if judged else None, len(sim_bin), len(real_bin),
                    )
                )  # fmt: skip
    return rows


def _bin_aucs(sim: pd.DataFrame, real: pd.DataFrame) -> list[dict[str, object]]:
    """Per redshift bin holding enough galaxies on both sides, the classifier's AUC on the colours alone."""
    rows = []
    for _, edges in load_targets().bins.iterrows():
        lo, hi = float(edges["z_lo"]), float(edges["z_hi"])
        sim_bin = sim[(sim["redshift"] >= lo) & (sim["redshift"] < hi)]
        real_bin = real[(real["redshift"] >= lo) & (real["redshift"] < hi)]
        if min(len(sim_bin), len(real_bin)) > MIN_REAL_GALAXIES:
            auc = two_sample_auc(sim_bin, real_bin, COLOURS)
            rows.append(_row(f"{lo:.2f}-{hi:.2f}", "classifier AUC", "colours in bin", auc,
                             AUC_INDISTINGUISHABLE, None, len(sim_bin), len(real_bin)))  # fmt: skip
    return rows


def _percentile(values: npt.NDArray[np.float64], percentile: str) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, float(percentile[1:]))) if len(values) else float("nan")


def _whole(
    quantity: str, level: str, sim: pd.DataFrame, real: pd.DataFrame, tolerance: float | None
) -> dict[str, object]:
    return _row(
        "all", quantity, level, _percentile(sim[quantity].to_numpy(), level),
        _percentile(real[quantity].to_numpy(), level), tolerance, len(sim), len(real),
    )  # fmt: skip


def two_sample_auc(
    sim: pd.DataFrame, real: pd.DataFrame, features: tuple[str, ...] = CLASSIFIER_FEATURES
) -> float:
    """Cross-validated ROC AUC of a classifier telling simulated from real galaxies (equal numbers) on
    ``features``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    n = min(len(sim), len(real))
    if n < 10:
        return float("nan")
    rng = np.random.default_rng(SEED)
    columns = list(features)
    both = np.vstack(
        [
            sim[columns].to_numpy()[rng.permutation(len(sim))[:n]],
            real[columns].to_numpy()[rng.permutation(len(real))[:n]],
        ]
    )
    label = np.r_[np.ones(n), np.zeros(n)]
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    scores = cross_val_score(
        HistGradientBoostingClassifier(random_state=SEED), both, label, cv=folds, scoring="roc_auc"
    )
    return float(np.mean(scores))


def knn_sigma_mad(catalogue: pd.DataFrame, n_train: int, n_test: int, seed: int = SEED) -> float:
    """sigma_MAD of a 20-NN regressor on the four colours, trained on n_train galaxies, tested on n_test
    others (a random split drawn with ``seed``)."""
    from sklearn.neighbors import KNeighborsRegressor

    if n_train < KNN_NEIGHBOURS or n_test < 1 or len(catalogue) < n_train + n_test:
        return float("nan")
    order = np.random.default_rng(seed).permutation(len(catalogue))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    colours = catalogue[list(COLOURS)].to_numpy()
    z = catalogue["redshift"].to_numpy()
    regressor = KNeighborsRegressor(KNN_NEIGHBOURS).fit(colours[train], z[train])
    return metric_table(z[test], regressor.predict(colours[test]))["sigma_mad"]


def inclination_trend(catalogue: pd.DataFrame) -> tuple[dict[str, float], int]:
    """Median colour of the most- minus the least-inclined quartile of disk-dominated galaxies, colours
    relative to the median at their redshift; and how many disk-dominated galaxies there were."""
    lo, hi = INCLINATION_Z_RANGE
    disks = catalogue[
        (catalogue["bulge_fraction"] < DISK_DOMINATED_BULGE_FRACTION)
        & np.isfinite(catalogue["axis_ratio"])
        & (catalogue["redshift"] > lo)
        & (catalogue["redshift"] < hi)
    ]
    if len(disks) < 8:
        return {colour: float("nan") for colour in MASTERS_TREND}, len(disks)
    z_slice = np.floor(disks["redshift"].to_numpy() / INCLINATION_Z_STEP)
    q = disks["axis_ratio"].to_numpy()
    inclined, face_on = q <= np.quantile(q, 0.25), q >= np.quantile(q, 0.75)
    trends = {}
    for colour in MASTERS_TREND:
        values = disks[colour].to_numpy()
        relative = values - pd.Series(values).groupby(z_slice).transform("median").to_numpy()
        trends[colour] = float(np.median(relative[inclined]) - np.median(relative[face_on]))
    return trends, len(disks)


def _row(
    scope: str,
    quantity: str,
    statistic: str,
    simulated: float,
    real: float,
    tolerance: float | None,
    n_sim: int,
    n_real: int,
) -> dict[str, object]:
    offset = simulated - real
    judged = tolerance is not None
    return {
        "scope": scope,
        "quantity": quantity,
        "statistic": statistic,
        "simulated": simulated,
        "real": real,
        "offset": offset,
        "tolerance": tolerance if judged else np.nan,
        "judged": judged,
        "passed": bool(abs(offset) <= tolerance)
        if tolerance is not None and np.isfinite(offset)
        else not judged,
        "n_sim": n_sim,
        "n_real": n_real,
    }


def synth_check(folder: Path | str) -> pd.DataFrame:
    """Measure the shards in ``folder`` and compare with the SDSS galaxies: the tidy table of :func:`compare`.

    ``table.attrs["lrg_fraction"]`` is the largest LRG fraction the shards were simulated with: the
    real galaxies are the main sample, so the check is meant for catalogues without the LRG tail.
    """
    table = compare(measure_catalogue(folder), noiseless_catalogue(folder))
    fractions = [float(inspect_shard(path).attrs.get("lrg_fraction", 0.0)) for path in resolve_shards(folder)]  # type: ignore[arg-type]
    table.attrs["lrg_fraction"] = max(fractions)
    return table


def passed(table: pd.DataFrame) -> bool:
    return bool(table.loc[table["judged"], "passed"].all())


def render_report(table: pd.DataFrame) -> str:
    """Human-readable: per-bin median offsets (sim - real), whole-sample figures with targets, PASS/FAIL."""
    lines = [
        "model-like magnitudes from the cutouts (r-band moment-weighted colours; total r from the truth, else",
        '6" aperture r); both sides cut to every band < 20 and 0 < z < 0.3; real: the SDSS calibration',
        "galaxies (model magnitudes)",
    ]
    for statistic, title in (
        ("p50", f"median offsets, simulated minus real (mag); * judged (real n > 250) and within "
                f"{COLOUR_TOLERANCE_MAG} mag, ! outside"),
        ("noiseless p50", "the same from the true magnitudes (noiseless, no image; shown, not judged)"),
    ):  # fmt: skip
        medians = table[(table["scope"] != "all") & (table["statistic"] == statistic)]
        if medians.empty:
            continue
        lines += [
            "",
            title,
            f"{'z bin':>10} {'n_sim':>7} {'n_real':>7} " + " ".join(f"{q:>9}" for q in QUANTITIES),
        ]
        for scope, rows in medians.groupby("scope", sort=False):
            cells = []
            for _, cell in rows.set_index("quantity").loc[list(QUANTITIES)].iterrows():
                mark = ("*" if cell["passed"] else "!") if cell["judged"] else " "
                cells.append(f"{cell['offset']:+8.3f}{mark}")
            first = rows.iloc[0]
            lines.append(f"{scope:>10} {first['n_sim']:>7d} {first['n_real']:>7d} " + " ".join(cells))
    in_bins = table[(table["scope"] != "all") & (table["statistic"] == "colours in bin")]
    if not in_bins.empty:
        lines += ["", "classifier AUC on the four colours within each redshift bin (shown, not judged)"]
        lines += [f"{row['scope']:>10} {row['n_sim']:>7d} {row['n_real']:>7d} {row['simulated']:>9.3f}"
                  for _, row in in_bins.iterrows()]  # fmt: skip
    lines += [
        "",
        "whole sample                                simulated     target   offset  tolerance  result",
    ]
    for _, row in table[table["scope"] == "all"].iterrows():
        verdict = ("PASS" if row["passed"] else "FAIL") if row["judged"] else ""
        tolerance = f"{row['tolerance']:.4f}" if row["judged"] else ""
        label = f"{row['quantity']} {row['statistic']}"
        lines.append(
            f"  {label:<40} {row['simulated']:>10.4f} {row['real']:>10.4f} {row['offset']:>+8.4f} {tolerance:>10}  {verdict}"
        )
    judged = table[table["judged"]]
    verdict = "PASS" if passed(table) else "FAIL"
    lines += [
        "  (AUC target: <= 0.60 on the cutouts, <= 0.57 noiseless; real vs real is the cutouts' floor,",
        "   noiseless floor (real vs real plus the cutouts' measured colour noise) the noiseless one's;",
        "   20-NN target: the calibration galaxies' sigma_MAD +- 10%;",
        "   inclination: Masters et al. 2010 +- 30%, disk-dominated by truth bulge_fraction < 0.5)",
        "",
        f"{int(judged['passed'].sum())}/{len(judged)} judged checks pass: {verdict}",
    ]
    if table.attrs.get("lrg_fraction", 0.0) > 0:
        lines.append(
            f"note: simulated with an LRG tail (fraction {table.attrs['lrg_fraction']:.3f}); the real figures are"
            " for the main sample, so judge a catalogue made with --lrg-fraction 0"
        )
    return "\n".join(lines)


def record_synth_check(
    table: pd.DataFrame, load_before: float | None = None, command: str | None = None
) -> Path:
    """docs/results/synth-check.json (:mod:`astrospect.results`): the judged checks passed, the classifier
    AUCs, the 20-NN sigma_MAD on both sides, and the per-bin median colour offsets (cutouts and noiseless).
    ``command`` is the command that reproduces them (default: this process's command line)."""
    from astrospect import results

    whole = table[table["scope"] == "all"]

    def whole_figure(quantity: str, statistic: str, column: str = "simulated") -> float | None:
        rows = whole[(whole["quantity"] == quantity) & (whole["statistic"].str.startswith(statistic))]
        return round(float(rows.iloc[0][column]), 4) if not rows.empty else None

    def offsets(rows: pd.DataFrame) -> str:
        by_colour = rows.set_index("quantity")["offset"]
        return " / ".join(f"{float(by_colour[colour]):+.3f}" for colour in COLOURS) if not rows.empty else "-"

    medians = table[(table["scope"] != "all") & table["quantity"].isin(COLOURS)]
    bins = list(dict.fromkeys(medians["scope"]))
    judged = table[table["judged"]]
    return results.record(
        "synth-check",
        title="Simulated cutouts against real SDSS",
        figures={
            "checks_passed": int(judged["passed"].sum()),
            "checks_judged": len(judged),
            "auc_cutouts": whole_figure("classifier AUC", "5-fold"),
            "auc_real_vs_real": whole_figure("classifier AUC", "real vs real"),
            "auc_noiseless": whole_figure("classifier AUC", "noiseless"),
            "knn20_sigma_mad_simulated": whole_figure("20-NN sigma_MAD", "train"),
            "knn20_sigma_mad_real": whole_figure("20-NN sigma_MAD", "train", "real"),
        },
        tables={
            "colours": results.table(
                [
                    "z bin",
                    f"from the cutouts ({' / '.join(COLOURS)})",
                    "noiseless (true magnitudes)",
                ],
                [
                    [
                        scope,
                        offsets(medians[(medians["scope"] == scope) & (medians["statistic"] == "p50")]),
                        offsets(
                            medians[(medians["scope"] == scope) & (medians["statistic"] == "noiseless p50")]
                        ),
                    ]
                    for scope in bins
                ],
            )
        },
        load_before=load_before,
        command=command,
    )
