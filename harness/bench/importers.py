"""Importer throughput and memory: `astrospect import npz` on an uncompressed Pasquet-layout file under
``prlimit --as``, beside a plain ``np.load(mmap_mode="r")`` copy of the same bytes into HDF5.

The file is the simulator's galaxies (64x64 frames, see harness/import_files.py) tiled to ``--n`` rows with
unique objids. The baseline reads the cube member's exact bytes, extracted once to a ``.npy`` (``np.load``
does not memory-map members of an ``.npz``), and copies all of them into one HDF5 dataset, 1,000 rows at a
time; the importer reads the same rows, checks them, crops them to 32x32 and writes shards with their
progress file. Each runs in its own process, the importer under the address-space limit (the baseline maps
the whole cube, so it has none), timed ``repeats`` times alternating (best kept); peak resident memory is the child's own (``wait4``). The load average is
printed beside the figures: on a shared machine only the ratio measured in the same run means something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import typer

from astrospect import results
from astrospect.settings import load_settings
from harness import import_files

GIB = 1024**3

BASELINE = """
import sys, h5py, numpy as np
cube = np.load(sys.argv[1], mmap_mode="r")
with h5py.File(sys.argv[2], "w") as out:
    target = out.create_dataset("images", shape=cube.shape, dtype=cube.dtype)
    for start in range(0, cube.shape[0], 1000):
        target[start : start + 1000] = cube[start : start + 1000]
"""


# A child's peak RSS must be its own: Linux carries the parent's high-water mark into a forked (or vforked)
# child across exec, and this process holds the simulator. So children start from this small launcher, whose
# own mark is ~10 MB, and it reports the grandchild's ru_maxrss from wait4.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _timed_child(command: list[str]) -> tuple[float, int]:
    """Run a child to completion; its wall seconds and its own peak resident memory in bytes."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *command], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    maxrss_kb, code = (int(value) for value in result.stdout.split()[-2:])
    if code != 0:
        raise RuntimeError(f"{command[:4]} failed ({code}): {result.stderr[-2000:]}")
    return seconds, maxrss_kb * 1024  # Linux reports kilobytes


def _extract_cube(npz: Path, out: Path) -> None:
    """The cube member's bytes as a plain .npy (a partial copy never takes the final name)."""
    partial = out.with_suffix(".partial")
    with zipfile.ZipFile(npz) as archive, archive.open("cube.npy") as member, partial.open("wb") as sink:
        shutil.copyfileobj(member, sink, 16 * 1024**2)
    partial.rename(out)


def main(
    n: int = typer.Option(50_000, help="Galaxies in the file (64x64x5 float32: 81,920 bytes each)."),
    limit_gib: float = typer.Option(4.0, help="Address-space limit of the importer (prlimit --as)."),
    repeats: int = typer.Option(2, min=1, help="Timed rounds of each path; the best is kept."),
    workdir: Path | None = typer.Option(None, help="Where the files go (default <home>/bench-import)."),
    keep: bool = typer.Option(False, help="Keep the generated files (default: remove them at the end)."),
) -> None:
    load_before = os.getloadavg()
    root = workdir or load_settings().home / "bench-import"
    root.mkdir(parents=True, exist_ok=True)
    source, npy = root / f"pasquet-{n}.npz", root / f"pasquet-{n}-cube.npy"
    limit = ["prlimit", f"--as={int(limit_gib * GIB)}", "--"]
    try:
        if not source.exists():
            with tempfile.TemporaryDirectory(dir=root) as sim:
                galaxies = import_files.simulate(Path(sim), 200, seed=2020)
            started = time.perf_counter()
            import_files.write_large_pasquet_npz(root / "partial.npz", galaxies, n)
            (root / "partial.npz").rename(source)
            print(
                f"wrote {source} ({source.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s"
            )
        if not npy.exists():
            _extract_cube(source, npy)
        size = source.stat().st_size
        importer_runs, baseline_runs = [], []
        for attempt in range(repeats):
            landing, copy = root / f"landing-{attempt}", root / f"copy-{attempt}.h5"
            # The baseline maps the whole cube at once: more address space than the importer's limit once
            # the file nears it (50,000 galaxies are 4.1 GB), so it runs unlimited; its peak RSS shows why.
            baseline_runs.append(_timed_child([sys.executable, "-c", BASELINE, str(npy), str(copy)]))
            copy.unlink()
            astrospect = str(Path(sys.executable).parent / "astrospect")
            command = [
                astrospect,
                "import",
                "npz",
                "--data",
                str(source),
                "--out",
                str(landing),
                "--no-progress",
            ]
            importer_runs.append(_timed_child([*limit, *command]))
            shards = sorted(landing.glob("*.h5"))
            assert len(shards) == -(-n // 1000), f"expected {-(-n // 1000)} shards, got {len(shards)}"
            shutil.rmtree(landing)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()

    import_s, plain_s = min(s for s, _ in importer_runs), min(s for s, _ in baseline_runs)
    import_peak = max(rss for _, rss in importer_runs)
    plain_peak = max(rss for _, rss in baseline_runs)
    ratio = plain_s / import_s
    print(
        f"\nimport of an uncompressed Pasquet-layout .npz: {n} galaxies, {size / 1e9:.2f} GB, best of {repeats}"
    )
    print(f"the importer under prlimit --as={limit_gib:g}G, the baseline without a limit")
    print(f"{'path':<52}{'galaxies/s':>12}{'MB/s':>9}{'peak RSS':>11}{'ratio':>8}")
    rows = [
        ("np.load(mmap_mode='r') -> HDF5 copy (baseline)", plain_s, plain_peak, 1.0),
        ("astrospect import npz (checks, crop, shards)", import_s, import_peak, ratio),
    ]
    for label, seconds, peak, relative in rows:
        print(
            f"{label:<52}{n / seconds:>12,.0f}{size / 1e6 / seconds:>9.0f}{peak / GIB:>9.2f} G{relative:>8.2f}"
        )
    print(
        f"\nimporter peak RSS < 1 GiB: {'PASS' if import_peak < GIB else 'FAIL'} ({import_peak / 1e6:.0f} MB)"
    )
    print(f"importer rate >= 0.5x baseline: {'PASS' if ratio >= 0.5 else 'FAIL'} ({ratio:.2f}x)")
    print(f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}")
    written = results.record(
        "bench-import",
        title=f"Importer: a {n:,}-galaxy Pasquet .npz",
        figures={"importer_over_baseline": round(ratio, 2), "galaxies": n, "file_gb": round(size / 1e9, 2)},
        tables={
            "rates": results.table(
                ["what", "galaxies/s", "MB/s", "peak RSS GB"],
                [
                    [label, round(n / seconds), round(size / 1e6 / seconds), round(peak / GIB, 2)]
                    for label, seconds, peak, _ in rows
                ],
            )
        },
        load_before=round(load_before[0], 2),
    )
    print(f"results: {written}")


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    typer.run(main)
