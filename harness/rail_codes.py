"""Measure the field's codes (RAIL's FlexZBoost, CMNN, DNF, BPZ) at ``make run``'s size, and what the
``rail`` extra weighs; written to ``docs/results/rail-codes.json`` (docs/reference/field-codes.md).

``python -m harness.rail_codes --data SHARDS``: for each code and the colour k-NN (the bar it is set beside),
the wall time of its fit (informer) and of its holdout evaluation (estimator on every holdout batch, the
metrics), and its holdout sigma_MAD, outlier fraction, CRPS, PIT KS and 68% coverage, on the same splits.
``--weights-only`` measures only the weight: the installed size of the packages the extra adds to the lock
(those only the ``rail`` extra needs) and the import time of each RAIL stage module in a fresh interpreter.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from astrospect import results
from astrospect.settings import PROJECT_ROOT

RESULTS_NAME = "rail-codes"
CODES = ("rail-flexzboost", "rail-cmnn", "rail-dnf", "rail-bpz")
BAR = "baseline-knn-full"
STAGE_MODULES = {
    "rail-flexzboost": "rail.estimation.algos.flexzboost",
    "rail-cmnn": "rail.estimation.algos.cmnn",
    "rail-dnf": "rail.estimation.algos.dnf",
    "rail-bpz": "rail.estimation.algos.bpz_lite",
}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def extra_only_packages(lock_path: Path = PROJECT_ROOT / "uv.lock", extra: str = "rail") -> list[str]:
    """The locked packages that only ``extra`` brings in: its dependency closure in the lock, less the
    closure of everything else the project asks for (its dependencies, other extras, dependency groups)."""
    lock = tomllib.loads(lock_path.read_text())
    packages = {_normalise(p["name"]): p for p in lock["package"]}
    project = packages["astrospect"]

    def names(entries: Iterable[dict[str, object]]) -> list[tuple[str, tuple[str, ...]]]:
        return [(_normalise(str(entry["name"])), tuple(entry.get("extra", ()))) for entry in entries]  # type: ignore[arg-type]

    def closure(roots: Iterable[tuple[str, tuple[str, ...]]]) -> set[str]:
        seen: set[tuple[str, str]] = set()
        stack = list(roots)
        while stack:
            name, extras = stack.pop()
            if name not in packages:
                continue
            package = packages[name]
            for part in ("", *extras):  # the package itself, then each extra it is asked with
                if (name, part) in seen:
                    continue
                seen.add((name, part))
                entries = (
                    package.get("dependencies", [])
                    if not part
                    else package.get("optional-dependencies", {}).get(part, [])
                )
                stack.extend(names(entries))
        return {name for name, _ in seen}

    others = names(project.get("dependencies", []))
    for key, entries in project.get("optional-dependencies", {}).items():
        if key != extra:
            others += names(entries)
    for entries in project.get("dev-dependencies", {}).values():
        others += names(entries)
    return sorted(closure(names(project["optional-dependencies"][extra])) - closure(others))


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def installed_bytes(distribution: str) -> int:
    """The bytes of an installed distribution's files (its RECORD)."""
    files = importlib.metadata.distribution(distribution).files or []
    total = 0
    for file in files:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total


def import_seconds(module: str) -> float:
    """Wall time to import ``module`` in a fresh interpreter (the cost a training task pays once)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def weights() -> tuple[dict[str, results.Scalar], dict[str, dict[str, Any]]]:
    added = extra_only_packages()
    # a package for another platform (appnope: macOS) is in the lock but not installed here
    sizes = [(name, installed_bytes(name)) for name in added if _installed(name)]
    figures: dict[str, results.Scalar] = {
        "rail_added_packages": len(added),
        "rail_installed_packages": len(sizes),
        "rail_installed_mib": round(sum(size for _, size in sizes) / 2**20, 1),
    }
    rows: list[list[results.Scalar]] = [
        [name, round(size / 2**20, 2)] for name, size in sorted(sizes, key=lambda item: -item[1])
    ]
    imports: list[list[results.Scalar]] = [
        [code, module, round(import_seconds(module), 2)] for code, module in STAGE_MODULES.items()
    ]
    tables = {
        "packages": results.table(["package", "installed MiB"], rows),
        "imports": results.table(["challenger", "RAIL module", "import s (fresh interpreter)"], imports),
    }
    return figures, tables


def timings(data: Path, out: Path) -> tuple[dict[str, results.Scalar], dict[str, dict[str, Any]]]:
    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import resolve_shards
    from astrospect.models import registry
    from astrospect.models.evaluate import evaluate
    from astrospect.models.registry import TrainConfig

    splits = select_splits(resolve_shards(data), "full")
    rows: list[list[results.Scalar]] = []
    figures: dict[str, results.Scalar] = {
        "n_galaxies": len(splits.train) + len(splits.val) + len(splits.holdout),
        "n_train": len(splits.train),
        "n_holdout": len(splits.holdout),
    }
    for name in (BAR, *CODES):
        challenger = registry.get(name)
        started = time.perf_counter()
        trained = challenger.fit(splits, TrainConfig(out_dir=out / name))
        fitted = time.perf_counter()
        evaluation = evaluate(
            trained.predict, splits.holdout, name=name, predict_pdf=trained.predict_pdf, bins=trained.bins
        )
        done = time.perf_counter()
        metrics, pdf = evaluation.metrics, evaluation.pdf_metrics
        rows.append(
            [
                name,
                round(fitted - started, 1),
                round(done - fitted, 1),
                round(done - started, 1),
                round(metrics["sigma_mad"], 4),
                round(metrics["outlier_frac_005"], 4),
                round(pdf["crps"], 4),
                round(pdf["pit_ks"], 3),
                round(pdf["coverage_68"], 3),
            ]
        )
        figures[f"{name}_sigma_mad"] = round(metrics["sigma_mad"], 4)
        figures[f"{name}_total_s"] = round(done - started, 1)
        typer.echo(f"{name}: {rows[-1]}")
    columns = [
        "challenger",
        "fit s",
        "holdout s",
        "total s",
        "sigma_MAD",
        "outliers >0.05",
        "CRPS",
        "PIT KS",
        "coverage 68%",
    ]
    return figures, {"codes": results.table(columns, rows)}


def main(
    data: Path = typer.Option(None, help="the shards (folder) to split and measure on"),
    out: Path = typer.Option(Path("/tmp/astrospect-rail-codes"), help="the challengers' output folders"),
    weights_only: bool = typer.Option(False, help="measure only what the extra weighs"),
) -> None:
    load_before = results.load_average()
    figures, tables = weights()
    if not weights_only:
        if data is None:
            raise typer.BadParameter("--data is needed unless --weights-only")
        more_figures, more_tables = timings(data, out)
        figures.update(more_figures)
        tables.update(more_tables)
    path = results.record(
        RESULTS_NAME if not weights_only else f"{RESULTS_NAME}-weights",
        title="The field's codes through RAIL: fit and holdout times, holdout scores, and the extra's weight",
        figures=figures,
        tables=tables,
        load_before=load_before,
    )
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
