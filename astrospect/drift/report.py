"""The drift report: the verdict, a per-feature table, the JSON metrics and a self-contained HTML page.

:class:`DriftReport` is what the nightly step gets back: ``drifting`` (bool), ``summary()`` (small,
JSON-able, for XCom and the asset event), ``metrics()`` (a flat dict of floats for MLflow), ``to_html()``
(one page, plots inlined as PNG) and ``to_json()`` (everything, histograms included).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from astrospect.drift.statistics import FeatureDrift

PANEL_COLUMNS = 6


def is_drifting(features: list[FeatureDrift], share_threshold: float) -> bool:
    """The night's verdict: some feature drifted, and more than ``share_threshold`` of them did."""
    drifted = sum(item.drifted for item in features)
    return drifted > 0 and drifted / len(features) > share_threshold


@dataclass
class DriftReport:
    reference_version: str  # the snapshot the reference cutouts come from
    tonight_shards: list[str]  # names of tonight's shards
    model_version: str | None  # whose predicted N(z) was compared, if any
    features: list[FeatureDrift]
    alpha: float  # chance of flagging a night like the reference
    share_threshold: float  # the night drifts when the share of drifted features exceeds this
    action: str  # what a drifting night does: warn or retrain
    seconds: dict[str, float] = field(default_factory=dict)  # where the step's time went
    from_cache: dict[str, bool] = field(default_factory=dict)  # reference features / predictions cached?
    created_at: str = ""

    @property
    def drifted_features(self) -> list[str]:
        return [item.feature for item in self.features if item.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def drifting(self) -> bool:
        return is_drifting(self.features, self.share_threshold)

    @property
    def prediction(self) -> FeatureDrift | None:
        return next((item for item in self.features if item.kind == "prediction"), None)

    @property
    def n_tonight(self) -> int:
        return max((item.n_tonight + item.n_missing for item in self.features), default=0)

    @property
    def n_reference(self) -> int:
        return max((item.n_reference for item in self.features), default=0)

    def table(self) -> pd.DataFrame:
        """One row per feature: medians, KS, p-value, Wasserstein, PSI, drifted."""
        columns = {
            "feature": "feature",
            "kind": "kind",
            "reference_median": "ref median",
            "tonight_median": "tonight median",
            "ks_statistic": "KS D",
            "p_value": "p",
            "wasserstein_sigma": "W / sigma",
            "psi": "PSI",
            "drifted": "drifted",
        }
        frame = pd.DataFrame([item.row() for item in self.features])
        return frame[list(columns)].rename(columns=columns)

    def summary(self) -> dict[str, Any]:
        prediction = self.prediction
        return {
            "drifting": self.drifting,
            "action": self.action,
            "share_drifted": round(self.share_drifted, 4),
            "drifted_features": self.drifted_features,
            "n_features": len(self.features),
            "reference_version": self.reference_version,
            "model_version": self.model_version,
            "n_reference": self.n_reference,
            "n_tonight": self.n_tonight,
            "tonight_shards": self.tonight_shards,
            "prediction": None
            if prediction is None
            else {
                "reference_median": prediction.reference_median,
                "tonight_median": prediction.tonight_median,
                "p_value": prediction.p_value,
                "psi": prediction.psi,
                "drifted": prediction.drifted,
            },
            "seconds": round(sum(self.seconds.values()), 3),
        }

    def metrics(self) -> dict[str, float]:
        """Flat, for ``mlflow.log_metrics``: the verdict and, per feature, KS, p-value, Wasserstein, PSI."""
        values = {
            "drift/drifting": float(self.drifting),
            "drift/share_drifted": self.share_drifted,
            "drift/n_drifted": float(len(self.drifted_features)),
            "drift/n_tonight": float(self.n_tonight),
            "drift/seconds": float(sum(self.seconds.values())),
        }
        for item in self.features:
            values |= {
                f"drift/{item.feature}/ks": item.ks_statistic,
                f"drift/{item.feature}/p_value": item.p_value,
                f"drift/{item.feature}/wasserstein_sigma": item.wasserstein_sigma,
                f"drift/{item.feature}/psi": item.psi,
            }
        return {name: value for name, value in values.items() if math.isfinite(value)}

    def to_json(self) -> str:
        payload = asdict(self) | {"summary": self.summary()}
        return json.dumps(_jsonable(payload), indent=2, allow_nan=False)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """``drift.html`` and ``drift.json`` in ``folder`` (each written whole, then renamed into place)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "drift.html", folder / "drift.json"
        for path, text in zip(paths, (self.to_html(), self.to_json()), strict=True):
            descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            os.replace(temp, path)
        return paths

    def to_html(self) -> str:
        """One self-contained page: verdict, what was compared, the table, the distributions."""
        verdict = "DRIFTING" if self.drifting else "no drift"
        colour = "#b00020" if self.drifting else "#1b5e20"
        facts = [
            ("reference snapshot", self.reference_version),
            ("tonight", f"{self.n_tonight:,} cutouts in {len(self.tonight_shards)} shard(s)"),
            ("reference", f"{self.n_reference:,} cutouts"),
            ("model", self.model_version or "none (data drift only)"),
            (
                "drifted features",
                f"{len(self.drifted_features)} of {len(self.features)} "
                f"(share {self.share_drifted:.2f}; the night drifts above {self.share_threshold:.2f})",
            ),
            (
                "false-alarm rate",
                f"{self.alpha:g} per night (each feature tested at {self._per_feature:.2g})",
            ),
            ("action", self.action),
            ("cost", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())),
            ("created", self.created_at),
        ]
        rows = "".join(self._html_row(item) for item in self.features)
        shards = "".join(f"<li>{html.escape(name)}</li>" for name in self.tonight_shards)
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AstroSpect drift: {verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }}
h1 span {{ color: {colour}; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #eee; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
tr.drifted td {{ background: #fde0e0; font-weight: 600; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }}
dt {{ font-weight: 600; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>AstroSpect drift: <span>{verdict}</span></h1>
<dl>{"".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)}</dl>
<p>Each feature: two-sample Kolmogorov-Smirnov test of tonight against the reference (drifted when p is
below the per-feature threshold), Wasserstein distance in units of the reference's robust sigma, and the
population stability index on ten reference-quantile bins (0.1 moderate, 0.25 large).</p>
<table><thead><tr><th>feature</th><th>kind</th><th>ref median</th><th>tonight median</th><th>KS D</th>
<th>p</th><th>W / sigma</th><th>PSI</th><th>tonight NaN</th><th>drifted</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Distributions (grey: reference, line: tonight)</h2>
<img alt="per-feature distributions, reference against tonight" src="data:image/png;base64,{self._plot()}">
<h2>Tonight's shards</h2><ul>{shards}</ul>
</body></html>
"""

    @property
    def _per_feature(self) -> float:
        return self.alpha / max(len(self.features), 1)

    @staticmethod
    def _html_row(item: FeatureDrift) -> str:
        cells = [
            html.escape(item.feature),
            html.escape(item.kind),
            f"{item.reference_median:.4g}",
            f"{item.tonight_median:.4g}",
            f"{item.ks_statistic:.3f}",
            f"{item.p_value:.2g}",
            f"{item.wasserstein_sigma:.3f}",
            f"{item.psi:.3f}",
            str(item.n_missing),
            "yes" if item.drifted else "no",
        ]
        css = ' class="drifted"' if item.drifted else ""
        return f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"

    def _plot(self) -> str:
        """Small multiples of every feature's two densities, as a base64 PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = math.ceil(len(self.features) / PANEL_COLUMNS)
        figure, axes = plt.subplots(
            rows, PANEL_COLUMNS, figsize=(3.0 * PANEL_COLUMNS, 2.3 * rows), squeeze=False
        )
        for axis in axes.flat[len(self.features) :]:
            axis.set_visible(False)
        for axis, item in zip(axes.flat, self.features, strict=False):
            edges = item.bin_edges
            axis.stairs(item.reference_density, edges, fill=True, color="0.8", label="reference")
            axis.stairs(item.tonight_density, edges, color="#b00020" if item.drifted else "#1565c0", lw=1.5)
            axis.set_title(
                f"{item.feature}  p={item.p_value:.1g}  PSI={item.psi:.2f}",
                fontsize=9,
                color="#b00020" if item.drifted else "black",
                fontweight="bold" if item.drifted else "normal",
            )
            axis.tick_params(labelsize=7)
            axis.set_yticks([])
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)
        return base64.b64encode(buffer.getvalue()).decode()


def _jsonable(value: Any) -> Any:
    """Strict JSON: an infinite PSI or distance (a constant reference) is written as a string."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
