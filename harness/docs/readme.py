"""The README's measured figures, rewritten from the results files (``docs/results/*.json``).

The README holds one generated block between ``<!-- begin generated: python -m harness.docs.readme -->``
and ``<!-- end generated -->``: the headline figures (``make run``'s time, the best CNN over the colour
k-NN, the PDF CNN's CRPS ratio, serving req/s and p99) and an excerpt of ``make run``'s report. Nothing
else in the README states a measured figure. ``python -m harness.docs.readme`` rewrites the block;
``--check`` exits 1 when it is stale. Tests call :func:`readme_in_sync`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from harness.docs import render

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BEGIN = "<!-- begin generated: python -m harness.docs.readme -->"
END = "<!-- end generated -->"

TEMPLATE = """\
`make run` from a fresh clone: **<!-- figure: make-run wall_minutes --> min** on a {cpus}-core \
CPU machine, every model trained on CPU. Its report, in short, on the fixed holdout of \
<!-- figure: make-run holdout_galaxies --> simulated galaxies:

<!-- results: make-run table=report -->

- The best CNN (`<!-- figure: make-run best_cnn -->`) reaches **<!-- figure: make-run best_cnn_over_strongest_code -->x** \
the sigma_MAD of the strongest photo-z code the night ran (`<!-- figure: make-run strongest_code -->`; lower is \
better) and <!-- figure: make-run best_cnn_over_knn -->x the colour k-NN's; the PDF CNN's CRPS is \
**<!-- figure: make-run pdf_crps_over_knn_crps -->x** the colour k-NN PDF's.
- Served by `bentoml serve` (`make bench-serving-paths`, <!-- figure: bench-serving-paths clients --> clients, {serving_cpus} cores): \
**<!-- figure: bench-serving-paths json_requests_per_s --> req/s** with p99 <!-- figure: bench-serving-paths json_p99_ms --> ms \
on JSON, **<!-- figure: bench-serving-paths binary_requests_per_s --> req/s** with p99 \
<!-- figure: bench-serving-paths binary_p99_ms --> ms on raw float32.\
"""


def generated_block(results_dir: Path | None = None) -> str:
    """The block's text, markers included, from the results files as they are now."""
    from astrospect import results

    cpus = results.read("make-run", results_dir)["machine"].get("cpu_count")
    serving_cpus = results.read("bench-serving-paths", results_dir)["machine"].get("cpu_count")
    text = TEMPLATE.replace("{cpus}", str(cpus)).replace("{serving_cpus}", str(serving_cpus))
    expanded = render.expand(text, results_dir)
    # The README shows figures, not each measurement's log line: that is on the docs site.
    expanded = "\n".join(line for line in expanded.splitlines() if not line.startswith("*Measured by"))
    expanded = re.sub(r"\n{3,}", "\n\n", expanded)
    return f"{BEGIN}\n{expanded.strip()}\n{END}"


def _split(text: str) -> tuple[str, str, str]:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{README}: no block between {BEGIN!r} and {END!r}")
    return text[:start], text[start : end + len(END)], text[end + len(END) :]


def readme_in_sync(readme: Path = README, results_dir: Path | None = None) -> bool:
    """True when the README's generated block is what the results files give now."""
    _, block, _ = _split(readme.read_text())
    return block == generated_block(results_dir)


def rewrite(readme: Path = README, results_dir: Path | None = None) -> bool:
    """Rewrite the block; True when the README changed."""
    text = readme.read_text()
    before, block, after = _split(text)
    fresh = generated_block(results_dir)
    if block == fresh:
        return False
    readme.write_text(before + fresh + after)
    return True


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if readme_in_sync():
            print(f"{README}: the generated block is up to date")
            return 0
        print(f"{README}: the generated block is stale; run python -m harness.docs.readme")
        return 1
    print(f"{README}: {'rewritten' if rewrite() else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
