"""`astrospect import`: files in the exact layouts users have, made from the simulator's galaxies, land as
shards that the real gate accepts; bad rows go to the rejects table; an import killed with SIGKILL resumes
with no galaxy twice or missing; a file larger than the process's memory limit imports."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.data.shards import list_shards, read_shard
from astrospect.importers import fits, hdf5, npz
from astrospect.importers.columns import ColumnMap
from astrospect.importers.writer import ImporterError, Rows, run_import
from harness import import_files
from harness.corpus import write_fake_shard
from harness.import_files import Galaxies

pytestmark = pytest.mark.data

ASTROSPECT = str(Path(sys.executable).parent / "astrospect")
CUBE_COLUMNS = ColumnMap(objid="objID", specz="zspec", specz_err="zspec_err", ebv="ebv_sfd")


@pytest.fixture(scope="module")
def galaxies(tmp_path_factory: pytest.TempPathFactory) -> Galaxies:
    """200 galaxies of the simulator (GalSim + kcorrect), the pixels and labels every file below carries."""
    return import_files.simulate(tmp_path_factory.mktemp("sim"), 200, seed=20)


def _imported(landing: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [read_shard(path) for path in list_shards(landing) if path.name.startswith(f"{prefix}-r")]
    images = np.concatenate([p.images for p in parts])
    objid = np.concatenate([p.objid for p in parts])
    redshift = np.concatenate([p.redshift for p in parts if p.redshift is not None])
    return images, objid, redshift


def _bad_rows_file(path: Path, galaxies: Galaxies) -> tuple[Path, dict[int, str]]:
    """A Pasquet-layout file with one unusable row of each kind; returns it and the reason expected per row."""
    cube = import_files.framed(galaxies.images, 64)
    labels = import_files.pasquet_labels(galaxies)
    cube[3, 30, 30, 2] = np.nan  # inside the crop: the model would see it
    cube[4, 0, 0, 2] = np.nan  # outside the 32x32 crop: harmless, kept
    labels["z"][7] = np.nan
    labels["z"][11] = -0.05
    labels["z"][15] = 7.0
    labels["objID"][19] = labels["objID"][2]
    labels["zErr"][23] = 0.0
    np.savez(path, cube=cube, labels=labels)
    expected = {
        3: "non-finite pixels",
        7: "missing spec-z",
        11: "negative spec-z",
        15: "above 2",
        19: "duplicate objid",
        23: "spec-z error",
    }
    return path, expected


def test_every_layout_lands_exactly_and_passes_the_gate(
    galaxies: Galaxies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    # The same pixels under other objids per layout, so all of them are judged in one gate run.
    stored = import_files.write_pasquet_npz(tmp_path / "stored.npz", galaxies, compressed=False)
    packed = import_files.write_pasquet_npz(
        tmp_path / "packed.npz", galaxies.with_objid_offset(10**6), compressed=True
    )
    cube = import_files.write_hdf5_cube(tmp_path / "cube107.h5", galaxies.with_objid_offset(2 * 10**6))
    catalogue = import_files.write_fits_folder(tmp_path / "fits", galaxies.with_objid_offset(3 * 10**6))
    bad, expected_rejects = _bad_rows_file(tmp_path / "bad.npz", galaxies.with_objid_offset(4 * 10**6))
    sources = {
        "stored": npz.NpzSource(stored),
        "packed": npz.NpzSource(packed),
        "cube107": hdf5.Hdf5Source(cube, CUBE_COLUMNS, images="cutouts"),
        "fits": fits.FitsSource(tmp_path / "fits", catalogue),
        "bad": npz.NpzSource(bad),
    }
    assert sources["stored"].cube.compressed is False and sources["packed"].cube.compressed is True
    for name, source in sources.items():
        run_import(source, landing, name=name, shard_size=200, show_progress=False)

    for offset, name in enumerate(["stored", "packed", "cube107", "fits"]):
        images, objid, redshift = _imported(landing, name)
        np.testing.assert_array_equal(images, galaxies.images)  # the centre crop is the simulator's cutout
        np.testing.assert_array_equal(objid, galaxies.objid + offset * 10**6)
        np.testing.assert_array_equal(redshift, galaxies.z)
    with h5py.File(landing / "cube107-r000000000-000000200.h5") as shard:
        assert "centre-cropped 107 -> 32 pixels (rows and columns 37..68)" in shard.attrs["import_cutout"]
        assert shard.attrs["import_layout"] == "hdf5-cube" and shard.attrs["pixel_scale_arcsec"] == 0.396
        np.testing.assert_array_equal(shard["ebv"][()], galaxies.ebv)

    with (landing / "bad.rejects.csv").open() as handle:
        rejects = {int(row["row"]): row["reason"] for row in csv.DictReader(handle)}
    assert sorted(rejects) == sorted(expected_rejects)
    for row, reason in expected_rejects.items():
        assert reason in rejects[row], (row, rejects[row])
    _, bad_ids, _ = _imported(landing, "bad")
    assert len(bad_ids) == len(galaxies) - len(expected_rejects)
    assert galaxies.objid[4] + 4 * 10**6 in bad_ids  # a NaN outside the crop never reaches the model: kept

    # The real gate, through the commands the nightly DAG runs: every shard accepted, none quarantined.
    monkeypatch.setenv("ASTROSPECT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", "--source", str(landing)])
    assert ingested.exit_code == 0, ingested.output
    validated = runner.invoke(app, ["validate"])
    assert validated.exit_code == 0, validated.output
    verdict = json.loads(validated.stdout[validated.stdout.index("{") :])
    assert verdict["quarantined"] == [] and len(verdict["accepted"]) == 5


class _FailsOnThirdRead(npz.NpzSource):
    """The real source, interrupted by an I/O error on its third range (a disk or network failing)."""

    def read(self, start: int, stop: int) -> Rows:
        if start >= 2 * 40:
            raise OSError("simulated failure of the medium")
        return super().read(start, stop)


def test_a_compressed_import_interrupted_resumes_from_its_progress_file(
    galaxies: Galaxies, tmp_path: Path
) -> None:
    packed = import_files.write_pasquet_npz(tmp_path / "packed.npz", galaxies, compressed=True)
    landing = tmp_path / "landing"
    with pytest.raises(OSError, match="simulated failure"):
        run_import(_FailsOnThirdRead(packed), landing, shard_size=40, show_progress=False)
    progress = json.loads((landing / "packed.import.json").read_text())
    assert progress["next_row"] == 80 and len(progress["shards"]) == 2
    summary = run_import(npz.NpzSource(packed), landing, shard_size=40, show_progress=False)
    assert summary.resumed_at == 80 and summary.accepted == 200
    images, objid, _ = _imported(landing, "packed")  # the stream skipped the first 80 rows exactly
    np.testing.assert_array_equal(objid, galaxies.objid)
    np.testing.assert_array_equal(images, galaxies.images)
    with pytest.raises(ImporterError, match="field 'shard_size'"):
        run_import(npz.NpzSource(packed), landing, shard_size=50, show_progress=False)


def test_an_import_killed_with_sigkill_resumes_without_duplicates_or_gaps(
    galaxies: Galaxies, tmp_path: Path
) -> None:
    n = 2000
    big = import_files.write_large_pasquet_npz(tmp_path / "big.npz", galaxies, n)
    landing = tmp_path / "landing"
    command = [ASTROSPECT, "import", "npz", "--data", str(big), "--out", str(landing), "--shard-size", "50"]
    progress_file = landing / "big.import.json"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not progress_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    stopped_at = json.loads(progress_file.read_text())["next_row"]
    assert 0 < stopped_at < n, "the kill must land mid-import"

    resumed = subprocess.run([*command, "--no-progress"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_at_row"] >= stopped_at and summary["accepted"] == n
    objids = np.concatenate([read_shard(path).objid for path in list_shards(landing)])
    assert len(objids) == n and len(np.unique(objids)) == n  # none twice, none missing
    np.testing.assert_array_equal(np.sort(objids), np.arange(1, n + 1) + 10**15)
    assert not list(landing.glob(".*.part"))


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_a_file_larger_than_the_memory_limit_imports_under_it(galaxies: Galaxies, tmp_path: Path) -> None:
    limit = 512 * 1024**2
    big = import_files.write_large_pasquet_npz(tmp_path / "big.npz", galaxies, 7000)
    assert big.stat().st_size > limit
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # The limit binds: loading the cube the plain way fails under it.
    plain = subprocess.run(
        [sys.executable, "-c", f"import numpy as np; np.load({str(big)!r})['cube'].sum()"],
        preexec_fn=lambda: _limit_memory(limit),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert plain.returncode != 0 and "MemoryError" in plain.stderr
    landing = tmp_path / "landing"
    result = subprocess.run(
        [ASTROSPECT, "import", "npz", "--data", str(big), "--out", str(landing), "--no-progress"],
        preexec_fn=lambda: _limit_memory(limit),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 7000
    assert sum(read_shard(path).objid.size for path in list_shards(landing)) == 7000


def test_what_cannot_be_streamed_is_refused_naming_file_and_field(galaxies: Galaxies, tmp_path: Path) -> None:
    some = galaxies.take(np.arange(8))
    fortran = tmp_path / "fortran.npz"
    np.savez(
        fortran,
        cube=np.asfortranarray(import_files.framed(some.images, 64)),
        labels=import_files.pasquet_labels(some),
    )
    with pytest.raises(ImporterError, match=r"fortran\.npz: field 'cube': stored in Fortran order"):
        npz.NpzSource(fortran)
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, cube=import_files.framed(some.images, 64), labels=np.array([{"z": 0.1}] * 8))
    with pytest.raises(ImporterError, match=r"objects\.npz: field 'labels': an object array"):
        npz.NpzSource(pickled)
    with pytest.raises(ImporterError, match=r"missing\.npz: field '<file>': no such file"):
        npz.NpzSource(tmp_path / "missing.npz")
    refused = CliRunner().invoke(
        app, ["import", "npz", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]
    )
    assert refused.exit_code == 2 and "missing.npz: field '<file>': no such file" in refused.output
    example = (
        tmp_path / "example.npz"
    )  # the layout of the authors' 100-galaxy example: no `cube`, no `labels`
    np.savez(example, data=import_files.framed(some.images, 64), z=some.z[:, None], ebv=some.ebv)
    with pytest.raises(
        ImporterError, match=r"field 'cube': no such array in the \.npz \(it has: data, z, ebv\)"
    ):
        npz.NpzSource(example)
    stored = import_files.write_pasquet_npz(tmp_path / "ok.npz", some, compressed=False)
    with pytest.raises(ImporterError, match=r"ok\.npz: field 'Z_SPEC': no such column"):
        npz.NpzSource(stored, ColumnMap(objid="objID", specz="Z_SPEC", specz_err="zErr"))


def test_fits_one_file_per_band_rejects_missing_files_and_wrong_units(
    galaxies: Galaxies, tmp_path: Path
) -> None:
    from astropy.io import fits as astropy_fits

    some = galaxies.take(np.arange(12))
    folder = tmp_path / "bands"
    catalogue = import_files.write_fits_folder(folder, some, per_band=True)
    (folder / f"{some.objid[2]}-i.fits").unlink()
    with astropy_fits.open(folder / f"{some.objid[5]}-g.fits", mode="update") as hdus:
        hdus[0].header["BUNIT"] = "maggy"
    with astropy_fits.open(folder / f"{some.objid[8]}-z.fits", mode="update") as hdus:
        hdus[0].header["CDELT1"], hdus[0].header["CDELT2"] = -0.2 / 3600, 0.2 / 3600
    source = fits.FitsSource(folder, catalogue, pattern="{objid}-{band}.fits")
    summary = run_import(source, tmp_path / "landing", shard_size=100, show_progress=False)
    assert summary.accepted == 9 and summary.rejected == 3
    with summary.rejects_file.open() as handle:
        reasons = {int(row["row"]): row["reason"] for row in csv.DictReader(handle)}
    assert "i.fits: no such file" in reasons[2]
    assert "field 'BUNIT'" in reasons[5] and "maggies" in reasons[5]
    assert "field 'WCS': pixel scale 0.2000" in reasons[8]


def test_a_second_import_of_the_same_name_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    import fcntl

    cube = write_fake_shard(tmp_path / "cube.h5", 20, seed=1, objid_start=100)
    landing = tmp_path / "landing"
    landing.mkdir()
    with (landing / ".cube.import.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running import holds it
        with pytest.raises(ImporterError, match="another import of this name is running here"):
            run_import(hdf5.Hdf5Source(cube), landing, show_progress=False)
    assert run_import(hdf5.Hdf5Source(cube), landing, show_progress=False).accepted == 20
