"""The shared half of every importer: reject unusable rows, write shards, and make the import resumable.

A source (one module per layout) hands over rows by range: ``read(start, stop)`` gives band-first pixels in
the source's units and the mapped label columns. :func:`run_import` walks the source in ranges of
``shard_size`` rows; each range becomes at most one shard, named by the range
(``<name>-r<start>-<stop>.h5``), written by :func:`astrospect.data.shards.write_shard` (atomic, never over a
file). After each range, the rejects table and then the progress file are replaced atomically. So a killed
import resumes at the first range the progress file does not list; a shard published just before the kill is
recognised by its name and its objids and adopted, never written twice. Row checks never stop the import: a
row that fails one goes to the rejects table (CSV: source row, objid, reason). A spec-z error that the
source lacks (no such column, or NaN for a galaxy) is unknown, not wrong: it is stored as NaN.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.data.shards import write_shard
from astrospect.importers.convert import Conversion
from astrospect.importers.errors import ImporterError
from astrospect.importers.resume import ImportProgress, exclusive, objids_of, remove_own_temp_files
from astrospect.settings import BANDS, PROJECT_ROOT, get_logger

log = get_logger(__name__)

DEFAULT_SHARD_SIZE = 1000  # as `astrospect synth` writes them: ~20 MB at 32x32x5 float32
READ_ROWS = 256  # source rows read and converted at a time (memory), independent of the shard size


@dataclass
class Rows:
    """Rows ``start`` to ``start + n`` of a source, before any check.

    ``images``: band-first ``(n, 5, S, S)`` in the source's unit and scale as a source reads them (the
    writer's checked rows hold them converted, ``(n, 5, 32, 32)`` nanomaggies). ``problems``: rows the source
    itself could not read (a missing FITS file...), by position in this batch, with the reason.
    """

    start: int
    images: npt.NDArray[np.floating]
    objid: npt.NDArray[np.int64]
    specz: npt.NDArray[np.float64]
    specz_err: npt.NDArray[np.float64]
    ra: npt.NDArray[np.float64] | None = None
    dec: npt.NDArray[np.float64] | None = None
    ebv: npt.NDArray[np.float64] | None = None
    problems: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.objid.shape[0])

    @classmethod
    def from_labels(
        cls,
        start: int,
        images: npt.NDArray[np.floating],
        values: Mapping[str, npt.NDArray[np.generic]],
        problems: dict[int, str] | None = None,
    ) -> Rows:
        """Rows from a source's pixels and its label columns by role (:func:`columns.labels_from`)."""

        def optional(role: str) -> npt.NDArray[np.float64] | None:
            return values[role].astype(np.float64) if role in values else None

        n = len(values["objid"])

        return cls(
            start=start,
            images=images,
            objid=values["objid"].astype(np.int64),
            specz=values["specz"].astype(np.float64),
            # Optional: a source without a spec-z error column stores NaN, "unknown" (the shard format's word).
            specz_err=values["specz_err"].astype(np.float64)
            if "specz_err" in values
            else np.full(n, np.nan, dtype=np.float64),
            ra=optional("ra"),
            dec=optional("dec"),
            ebv=optional("ebv"),
            problems=problems or {},
        )


class Source(Protocol):
    """One layout's reader. ``options`` identifies the import: a resume with other options is refused."""

    path: Path
    layout: str
    n_rows: int
    conversion: Conversion

    def options(self) -> dict[str, object]: ...

    def read(self, start: int, stop: int) -> Rows: ...


@dataclass(frozen=True)
class LabelBounds:
    """What the gate's row-wise suite accepts (expectations/cutout_values.json), so rows it would quarantine
    a whole shard for are rejected here one by one instead."""

    max_redshift: float
    max_redshift_err: float
    max_redshift_err_rel: float


def gate_label_bounds(expectations_dir: Path = PROJECT_ROOT / "expectations") -> LabelBounds:
    """Read the bounds from the suite itself (plain JSON, no Great Expectations import: this runs under a
    tight memory limit), so the importer and the gate cannot drift apart."""
    suite = json.loads((expectations_dir / "cutout_values.json").read_text())
    bounds = {
        item["kwargs"]["column"]: item["kwargs"]
        for item in suite["expectations"]
        if item["type"] == "expect_column_values_to_be_between"
    }
    return LabelBounds(
        max_redshift=float(bounds["redshift"]["max_value"]),
        max_redshift_err=float(bounds["redshift_err"]["max_value"]),
        max_redshift_err_rel=float(bounds["redshift_err_rel"]["max_value"]),
    )


@dataclass
class ImportSummary:
    rows: int
    accepted: int
    rejected: int
    shards: list[str]
    seconds: float
    resumed_at: int
    conversion: dict[str, str]
    progress_file: Path
    rejects_file: Path

    def summary(self) -> dict[str, object]:
        done = self.rows - self.resumed_at
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "shards": len(self.shards),
            "resumed_at_row": self.resumed_at,
            "seconds": round(self.seconds, 2),
            "rows_per_s": round(done / self.seconds, 1) if self.seconds > 0 else None,
            "conversion": self.conversion,
            "progress_file": str(self.progress_file),
            "rejects_file": str(self.rejects_file),
        }


def shard_name(name: str, start: int, stop: int) -> str:
    return f"{name}-r{start:09d}-{stop:09d}.h5"


def run_import(
    source: Source,
    out_dir: Path,
    *,
    name: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    show_progress: bool = True,
    upload: UploadTarget | None = None,
) -> ImportSummary:
    """Import every row of ``source`` into shards in ``out_dir`` (or resume an import stopped there)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    name = name or source.path.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = gate_label_bounds()
    with exclusive(out_dir / f".{name}.import.lock"):
        remove_own_temp_files(out_dir, name)
        state = ImportProgress.load_or_start(
            out_dir,
            name,
            identity={
                "source": str(source.path.resolve()),
                "layout": source.layout,
                "rows": source.n_rows,
                "shard_size": shard_size,
                "options": source.options(),
            },
        )
        resumed_at = state.next_row
        if resumed_at:
            log.info("resuming %s at row %d of %d (%s)", source.path, resumed_at, source.n_rows, state.path)
        seen = objids_of(out_dir, state.shards)
        conversion = source.conversion.describe()
        for key, value in conversion.items():
            log.info("%s: %s", key.removeprefix("import_").replace("_", " "), value)
        started = time.perf_counter()
        with _progress_bar(source.n_rows, resumed_at, show_progress) as advance:
            for start in range(resumed_at, source.n_rows, shard_size):
                stop = min(start + shard_size, source.n_rows)
                kept, rejects = _read_checked(source, start, stop, bounds, seen)
                if len(kept):
                    path = out_dir / shard_name(name, start, stop)
                    _write_or_adopt(path, kept, source, conversion, start, stop)
                    state.shards.append(path.name)
                    if upload is not None:
                        upload.put(path)
                state.record(stop, len(kept), rejects)
                advance(stop - start)
        seconds = time.perf_counter() - started
    summary = ImportSummary(
        rows=source.n_rows,
        accepted=state.accepted,
        rejected=len(state.rejects),
        shards=state.shards,
        seconds=seconds,
        resumed_at=resumed_at,
        conversion=conversion,
        progress_file=state.path,
        rejects_file=state.rejects_path,
    )
    log.info("imported %s: %s", source.path, summary.summary())
    return summary


def _read_checked(
    source: Source, start: int, stop: int, bounds: LabelBounds, seen: set[int]
) -> tuple[Rows, list[tuple[int, int, str]]]:
    """Rows ``start:stop`` that pass, converted, and the rejects. Read :data:`READ_ROWS` at a time, so memory
    holds that many source cutouts (a 107-pixel cube's 1,000 rows would be 229 MB) whatever the shard size."""
    kept: list[Rows] = []
    rejects: list[tuple[int, int, str]] = []
    for first in range(start, stop, READ_ROWS):
        rows = source.read(first, min(first + READ_ROWS, stop))
        images, keep, rejected = _check(rows, source.conversion, bounds, seen)
        kept.append(_take(rows, images, keep))
        rejects.extend(rejected)
    return _concat(kept), rejects


def _take(rows: Rows, images: npt.NDArray[np.float32], keep: npt.NDArray[np.intp]) -> Rows:
    def pick(values: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64] | None:
        return None if values is None else values[keep]

    return Rows(
        start=rows.start,
        images=images[keep],
        objid=rows.objid[keep],
        specz=rows.specz[keep],
        specz_err=rows.specz_err[keep],
        ra=pick(rows.ra),
        dec=pick(rows.dec),
        ebv=pick(rows.ebv),
    )


def _concat(parts: list[Rows]) -> Rows:
    def join(name: str) -> Any:
        values = [getattr(part, name) for part in parts]
        return None if any(value is None for value in values) else np.concatenate(values)

    return Rows(
        start=parts[0].start,
        images=join("images"),
        objid=join("objid"),
        specz=join("specz"),
        specz_err=join("specz_err"),
        ra=join("ra"),
        dec=join("dec"),
        ebv=join("ebv"),
    )


def _check(
    rows: Rows, conversion: Conversion, bounds: LabelBounds, seen: set[int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp], list[tuple[int, int, str]]]:
    """Convert the pixels and give each unusable row its first reason. Returns the converted images, the
    positions kept, and the rejects as (source row, objid, reason)."""
    images = conversion.apply(rows.images)
    reasons: list[str | None] = [rows.problems.get(i) for i in range(len(rows))]
    finite = np.asarray(
        np.isfinite(images).all(axis=(2, 3))
    )  # (n, bands): a boolean reduce, cheap on clean rows
    z, err = rows.specz, rows.specz_err
    for i in range(len(rows)):
        if reasons[i] is not None:
            continue
        reasons[i] = _label_problem(int(rows.objid[i]), float(z[i]), float(err[i]), bounds)
        if reasons[i] is None and not finite[i].all():
            counts = (~np.isfinite(images[i])).sum(axis=(1, 2))
            bad = ", ".join(f"{band}: {count}" for band, count in zip(BANDS, counts, strict=True) if count)
            reasons[i] = f"non-finite pixels in the cutout ({bad})"
        if reasons[i] is None:
            objid = int(rows.objid[i])
            if objid in seen:
                reasons[i] = "duplicate objid (already imported)"
            else:
                seen.add(objid)
    keep = np.array([i for i, reason in enumerate(reasons) if reason is None], dtype=np.intp)
    rejects = [
        (rows.start + i, int(rows.objid[i]), reason) for i, reason in enumerate(reasons) if reason is not None
    ]
    return images, keep, rejects


def _label_problem(objid: int, z: float, err: float, bounds: LabelBounds) -> str | None:
    if objid <= 0:
        return f"objid {objid} is not a positive integer"
    if not np.isfinite(z):
        return "missing spec-z"
    if z < 0:
        return f"negative spec-z ({z:g})"
    if z > bounds.max_redshift:
        return f"spec-z {z:g} above {bounds.max_redshift:g} (not a galaxy of this survey, or a bad fit)"
    if np.isnan(err):
        return None  # unknown: no column, or no value for this galaxy; stored as NaN
    if not np.isfinite(err) or err <= 0:
        return f"infinite or non-positive spec-z error ({err:g})"
    if err > bounds.max_redshift_err:
        return f"spec-z error {err:g} above {bounds.max_redshift_err:g} (a failed fit)"
    if err > bounds.max_redshift_err_rel * z:
        return f"spec-z error {err:g} above {bounds.max_redshift_err_rel:g} of the spec-z {z:g}"
    return None


def _write_or_adopt(
    path: Path, kept: Rows, source: Source, conversion: dict[str, str], start: int, stop: int
) -> None:
    """Write the range's shard from its kept, converted rows; if a killed run already published it, adopt it
    when it holds exactly these galaxies (the name is the range, so that is the expected case), refuse
    otherwise."""
    if path.exists():
        with h5py.File(path, "r") as held:
            held_ids = held["objid"][()]
        if not np.array_equal(held_ids, kept.objid):
            raise ImporterError(
                f"{path}: field 'objid': already exists with other galaxies than rows {start}..{stop - 1} "
                f"of {source.path}; refusing to overwrite (move it away or import under another --name)"
            )
        log.info("%s: published before an interruption; adopted", path.name)
        return
    write_shard(
        path,
        kept.images,
        kept.objid,
        kept.specz,
        kept.specz_err,
        ra=kept.ra,
        dec=kept.dec,
        ebv=kept.ebv,
        survey="SDSS",
        attrs={
            **conversion,
            "import_source": str(source.path),
            "import_layout": source.layout,
            "import_rows": f"{start}..{stop - 1}",
        },
    )


@contextlib.contextmanager
def _progress_bar(total: int, done: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr with galaxies/s and ETA; yields ``advance(n)``."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("import"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("rows, {task.fields[rate]} rows/s, ETA"),
        TimeRemainingColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
    )
    started, start_done = time.perf_counter(), done
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("import", total=total, completed=done, rate="-")

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = (done - start_done) / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f}")

        yield advance


class UploadTarget:
    """An S3 landing zone ``s3://bucket/prefix``: each shard is uploaded once it is written locally, with the
    project's store (create-only; an identical object already there, after a resume, is fine)."""

    def __init__(self, uri: str) -> None:
        from astrospect.data.store import S3Store, split_s3_uri

        bucket, prefix = split_s3_uri(uri)
        parent, _, area = prefix.strip("/").rpartition("/")
        if not area:
            raise ImporterError(f"{uri}: give the landing prefix (s3://bucket/landing/), not a bare bucket")
        self.store = S3Store(f"s3://{bucket}/{parent}")
        self.area = area

    def put(self, path: Path) -> None:
        from astrospect.data.store import sha256_file

        self.store.put_shard(path, self.area, sha256_file(path))
