"""Importers forgive what they can: a labels array without a spec-z error imports (NaN, "unknown") and passes
the real gate; column names match ignoring case when only one column does; a near miss gets a "did you
mean"; every error the CLI prints names the file, the field and the reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from numpy.lib import recfunctions
from typer.testing import CliRunner, Result

from astrospect.cli import app
from astrospect.data.shards import list_shards, read_shard
from astrospect.importers import npz
from astrospect.importers.columns import PASQUET_NPZ, ColumnMap
from astrospect.importers.errors import ImporterError
from harness import import_files
from harness.import_files import Galaxies

pytestmark = pytest.mark.data

ERROR = re.compile(r"import failed: (?P<file>\S+): field '(?P<field>[^']+)': (?P<reason>\S.*)")


@pytest.fixture(scope="module")
def galaxies(tmp_path_factory: pytest.TempPathFactory) -> Galaxies:
    """100 galaxies of the simulator, so the real gate judges the imported shards."""
    return import_files.simulate(tmp_path_factory.mktemp("sim"), 100, seed=31)


def _labels(
    galaxies: Galaxies, drop: tuple[str, ...] = (), rename: dict[str, str] | None = None
) -> npt.NDArray[np.void]:
    labels = recfunctions.drop_fields(import_files.pasquet_labels(galaxies), list(drop), usemask=False)
    return recfunctions.rename_fields(labels, rename or {})


def _npz(path: Path, galaxies: Galaxies, labels: npt.NDArray[np.void]) -> Path:
    np.savez(path, cube=import_files.framed(galaxies.images, 64), labels=labels)
    return path


def _import(*args: str) -> Result:
    return CliRunner().invoke(app, ["import", *args, "--no-progress"], env={"COLUMNS": "300"})


def test_labels_without_a_spec_z_error_import_as_nan_and_pass_the_gate(
    galaxies: Galaxies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    no_error = _npz(tmp_path / "no-zerr.npz", galaxies, _labels(galaxies, drop=("zErr",)))
    imported = _import("npz", "--data", str(no_error), "--out", str(landing))
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout[imported.stdout.index("{") :])["accepted"] == len(galaxies)
    # '' names no column: the same, for a file that has one.
    others = galaxies.with_objid_offset(10**6)  # the gate refuses an objid it accepted before
    with_error = _npz(tmp_path / "told-none.npz", others, _labels(others))
    told = _import("npz", "--data", str(with_error), "--out", str(landing), "--specz-err", "")
    assert told.exit_code == 0, told.output

    for prefix in ("no-zerr", "told-none"):
        (path,) = [path for path in list_shards(landing) if path.name.startswith(prefix)]
        shard = read_shard(path)
        assert shard.redshift_err is not None and np.isnan(shard.redshift_err).all()
        np.testing.assert_array_equal(shard.redshift, galaxies.z)  # the redshift itself is still required
        columns = json.loads((landing / f"{prefix}.import.json").read_text())["options"]["columns"]
        assert "specz_err" not in columns and columns["specz"] == "z"

    monkeypatch.setenv("ASTROSPECT_HOME", str(tmp_path / "home"))
    assert CliRunner().invoke(app, ["ingest", "--data", str(landing)]).exit_code == 0
    validated = CliRunner().invoke(app, ["validate"])
    assert validated.exit_code == 0, validated.output
    verdict = json.loads(validated.stdout[validated.stdout.index("{") :])
    assert verdict["quarantined"] == [] and len(verdict["accepted"]) == 2


def test_column_names_match_ignoring_case_when_only_one_does(galaxies: Galaxies, tmp_path: Path) -> None:
    some = galaxies.take(np.arange(8))
    shouted = _npz(tmp_path / "shouted.npz", some, _labels(some, rename={"objID": "OBJID", "z": "Z"}))
    assert npz.NpzSource(shouted).chosen == {**PASQUET_NPZ.as_dict(), "objid": "OBJID", "specz": "Z"}
    landing = tmp_path / "landing"
    result = _import(
        "npz", "--data", str(shouted), "--out", str(landing), "--objid", "objid"
    )  # as the user typed it
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_shard(list_shards(landing)[0]).objid, some.objid)

    twice = _labels(some)
    twice = recfunctions.append_fields(twice, "OBJID", some.objid, usemask=False)
    both = _npz(tmp_path / "both.npz", some, recfunctions.rename_fields(twice, {"objID": "objid"}))
    with pytest.raises(
        ImporterError, match=r"both\.npz: field 'objID': ambiguous for objid: the columns OBJID, objid"
    ):
        npz.NpzSource(both)
    exact = npz.NpzSource(both, ColumnMap(objid="objid", specz="z"))  # an exact name is never ambiguous
    assert exact.chosen["objid"] == "objid"


def test_a_near_miss_gets_a_did_you_mean(galaxies: Galaxies, tmp_path: Path) -> None:
    some = galaxies.take(np.arange(8))
    renamed = _npz(tmp_path / "renamed.npz", some, _labels(some, rename={"z": "z_spec"}))
    result = _import("npz", "--data", str(renamed), "--out", str(tmp_path / "landing"))
    assert result.exit_code == 2
    error = ERROR.search(result.output)
    assert error is not None, result.output
    assert (error["file"], error["field"]) == (str(renamed), "z")
    assert "no such column (needed for specz" in error["reason"]
    typo = _import("npz", "--data", str(renamed), "--out", str(tmp_path / "landing"), "--specz", "zspec")
    assert "field 'zspec': no such column" in typo.output and "(did you mean 'z_spec'?)" in typo.output
    assert "the file has: EBV, dec, dered_petro_r, objID, ra, zErr, z_spec" in typo.output
    far = _import("npz", "--data", str(renamed), "--out", str(tmp_path / "landing"), "--specz", "redshift")
    assert "field 'redshift': no such column" in far.output and "did you mean" not in far.output


def _cases(tmp_path: Path, galaxies: Galaxies) -> list[tuple[list[str], Path, str, str]]:
    """(arguments, the file the error must name, the field, a phrase of the reason)."""
    some = galaxies.take(np.arange(8))
    good = _npz(tmp_path / "good.npz", some, _labels(some))
    not_zip = tmp_path / "not-a-zip.npz"
    not_zip.write_text("hello")
    no_cube = tmp_path / "no-cube.npz"
    np.savez(no_cube, labels=_labels(some))
    text_ids = tmp_path / "text-ids.npz"
    labels = recfunctions.append_fields(
        _labels(some, drop=("objID",)), "objID", some.objid.astype(str), usemask=False
    )
    np.savez(text_ids, cube=import_files.framed(some.images, 64), labels=labels)
    cube = import_files.write_hdf5_cube(tmp_path / "cube.h5", galaxies.take(np.arange(16)))  # chunks of 16
    catalogue = import_files.write_fits_folder(tmp_path / "fits", some)
    return [
        (["npz", "--data", str(tmp_path / "absent.npz")], tmp_path / "absent.npz", "<file>", "no such file"),
        (["npz", "--data", str(not_zip)], not_zip, "<file>", "not an .npz"),
        (["npz", "--data", str(no_cube)], no_cube, "cube", "no such array"),
        (["npz", "--data", str(good), "--objid", "id"], good, "id", "no such column"),
        (["npz", "--data", str(good), "--ebv", "sfd"], good, "sfd", "no such column (needed for ebv"),
        (["npz", "--data", str(good), "--flux-unit", "counts"], good, "flux_unit", "is not one of"),
        (["npz", "--data", str(good), "--pixel-scale", "-1"], good, "pixel_scale", "must be positive"),
        (["npz", "--data", str(good), "--pixel-scale", "0.1"], good, "pixel_scale", "less than the models'"),
        (["npz", "--data", str(text_ids)], text_ids, "objID", "objid must be integers"),
        (["hdf5", "--data", str(cube)], cube, "images", "no such image dataset"),
        # objid finds objID (case), so the cube's first missing name is the spec-z's:
        (["hdf5", "--data", str(cube), "--images", "cutouts"], cube, "specz_redshift", "no such column (needed for specz"),
        (["hdf5", "--data", str(cube), "--images", "cutouts", "--specz", "zpsec"], cube, "zpsec", "(did you mean 'zspec'?)"),
        (["fits", "--data", str(tmp_path / "fits"), "--catalogue", str(catalogue), "--pattern", "x.fits"],
         tmp_path / "fits", "--pattern", "must contain {objid}"),
        (["fits", "--data", str(tmp_path / "fits"), "--catalogue", str(tmp_path / "none.csv")],
         tmp_path / "none.csv", "<file>", "unreadable catalogue CSV"),
    ]  # fmt: skip


def test_every_error_names_the_file_the_field_and_the_reason(galaxies: Galaxies, tmp_path: Path) -> None:
    for arguments, file, field, reason in _cases(tmp_path, galaxies):
        result = _import(*arguments, "--out", str(tmp_path / "landing"))
        assert result.exit_code == 2, (arguments, result.output)
        error = ERROR.search(result.output)
        assert error is not None, (arguments, result.output)
        assert (error["file"], error["field"]) == (str(file), field), arguments
        assert reason in error["reason"], (arguments, error["reason"])


def test_the_old_positional_input_still_works_and_both_at_once_is_refused(
    galaxies: Galaxies, tmp_path: Path
) -> None:
    some = galaxies.take(np.arange(8))
    good = _npz(tmp_path / "good.npz", some, _labels(some))
    old = _import("npz", str(good), "--out", str(tmp_path / "landing"))
    assert old.exit_code == 0, old.output
    both = _import("npz", str(good), "--data", str(good), "--out", str(tmp_path / "landing"))
    assert both.exit_code == 2 and "give --data only" in both.output
    neither = _import("npz", "--out", str(tmp_path / "landing"))
    assert neither.exit_code == 2 and "'--data'" in neither.output and "required" in neither.output
