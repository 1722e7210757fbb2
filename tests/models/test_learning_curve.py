"""The learning curve's nested training subsets, its points (written, reused, refused), its table, and
what `make run` trains."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from astrospect import results
from astrospect.data.dataset import read_labels, splits_from_labels
from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.models.curve_points import (
    CurvePoint,
    CurveSetup,
    PointMismatchError,
    describe_data,
    point_path,
    read_points,
    write_point,
)
from astrospect.models.learning_curve import (
    curve_table,
    nested_training_subset,
    record_learning_curve,
    run_learning_curve,
)
from astrospect.models.registry import TrainConfig

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def labelled_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("curve")
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        n = 400
        paths.append(
            write_shard(
                folder / f"s{k}.h5",
                np.zeros((n, 5, 32, 32), np.float32),
                10**9 + k * 10**6 + np.arange(n),
                rng.uniform(0, 0.6, n),
                np.full(n, 1e-4),
            )
        )
    return paths


def _ids(selection: object, objid: list[np.ndarray]) -> set[int]:
    return {int(i) for ids, rows in zip(objid, selection.rows, strict=True) for i in ids[rows]}  # type: ignore[attr-defined]


def test_training_subsets_are_nested_exact_and_leave_validation_and_holdout_alone(
    labelled_shards: list[Path],
) -> None:
    labels = read_labels(labelled_shards)
    objid = [shard.objid for shard in labels]
    full = splits_from_labels(labels, "full")
    previous: set[int] = set()
    for size in (100, 300, 600, len(full.train)):
        subset = nested_training_subset(full, objid, size)
        ids = _ids(subset.train, objid)
        assert len(subset.train) == len(ids) == size == len(subset.train.redshift)
        assert previous <= ids <= _ids(full.train, objid)
        assert subset.val is full.val and subset.holdout is full.holdout
        by_id = dict(
            zip(
                np.concatenate(objid).tolist(),
                np.concatenate([s.redshift for s in labels]).tolist(),
                strict=True,
            )
        )
        chosen = [i for ids_, rows in zip(objid, subset.train.rows, strict=True) for i in ids_[rows]]
        assert np.allclose(subset.train.redshift, [by_id[int(i)] for i in chosen])
        previous = ids
    with pytest.raises(ValueError, match="training split has"):
        nested_training_subset(full, objid, len(full.train) + 1)


def _shards(folder: Path, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    return [
        write_shard(
            folder / f"s{k}.h5",
            np.zeros((300, 5, 32, 32), np.float32),
            10**9 + k * 10**6 + np.arange(300),
            rng.uniform(0, 0.6, 300),
            np.full(300, 1e-4),
        )
        for k in range(2)
    ]


NULL = "baseline-nz-full"  # trains in milliseconds: the points' bookkeeping is what these tests exercise


def test_each_point_is_written_as_it_is_scored_with_its_data_and_setup(tmp_path: Path) -> None:
    shards = _shards(tmp_path / "shards", 0)
    out = tmp_path / "study"
    points = run_learning_curve(shards, [100, 200], [NULL], TrainConfig(out_dir=out, epochs=3, seed=7))
    assert [(p.challenger, p.n_train) for p in points] == [(NULL, 100), (NULL, 200)]
    data = describe_data(read_labels(shards))
    for point in points:
        written = json.loads(point_path(out, NULL, point.n_train).read_text())
        assert written["data_digest"] == data.digest and len(data.digest) == 64
        assert written["holdout_size"] == data.holdout_size > 0
        assert written["shards"] == [["s0.h5", shards[0].stat().st_size], ["s1.h5", shards[1].stat().st_size]]
        assert (written["epochs"], written["seed"]) == (3, 7)
        assert written["sigma_mad"] == point.sigma_mad > 0
        assert written["family"] == "null" and written["clipping"] == "full"
        assert point.val_sigma_mad is not None and point.val_sigma_mad > 0
        assert (out / f"{NULL}-{point.n_train}" / "per_bin_metrics.csv").is_file()


def test_a_second_run_reuses_the_points_there_and_joins_another_runs_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shards = _shards(tmp_path / "shards", 0)
    out = tmp_path / "study"
    config = TrainConfig(out_dir=out, epochs=3, seed=7)
    run_learning_curve(shards, [100], [NULL], config)
    first = point_path(out, NULL, 100).read_bytes()
    # A CNN column measured in another run on the same data (as a GPU run would leave it).
    cnn = CurvePoint("cnn-ebv", 100, 0.02, 0.01, 60.0, val_sigma_mad=0.021, family="cnn", clipping="full")
    write_point(out, cnn, describe_data(read_labels(shards)), CurveSetup(40, 7))
    with caplog.at_level(logging.INFO, logger="astrospect.models.learning_curve"):
        points = run_learning_curve(shards, [100, 200], [NULL], config)
    assert point_path(out, NULL, 100).read_bytes() == first  # not retrained, not rewritten
    assert any(
        "reusing" in record.getMessage() and f"{NULL}-100.json" in record.getMessage()
        for record in caplog.records
    )
    assert {(p.challenger, p.n_train) for p in points} == {(NULL, 100), (NULL, 200), ("cnn-ebv", 100)}
    row = curve_table(points)[0]
    assert row["cnn-ebv sigma_mad"] == 0.02 and f"{NULL} sigma_mad" in row


def test_a_point_from_other_data_or_another_setup_is_refused_naming_the_file_and_field(
    tmp_path: Path,
) -> None:
    out = tmp_path / "study"
    run_learning_curve(_shards(tmp_path / "a", 0), [100], [NULL], TrainConfig(out_dir=out, epochs=3, seed=7))
    other = _shards(tmp_path / "b", 1)  # same names and objids, other redshifts
    with pytest.raises(PointMismatchError, match=rf"{NULL}-100\.json: field 'data_digest'"):
        run_learning_curve(other, [200], [NULL], TrainConfig(out_dir=out, epochs=3, seed=7))
    assert not point_path(out, NULL, 200).exists()  # refused before anything trained
    same = sorted((tmp_path / "a").glob("*.h5"))
    with pytest.raises(PointMismatchError, match=rf"{NULL}-100\.json: field 'epochs' is 3, this run's is 5"):
        run_learning_curve(same, [100], [NULL], TrainConfig(out_dir=out, epochs=5, seed=7))
    point_path(out, "cnn-ebv", 100).write_text(json.dumps({"challenger": "cnn-ebv"}))
    with pytest.raises(PointMismatchError, match=r"cnn-ebv-100\.json: field 'data_digest' is missing"):
        read_points(out, describe_data(read_labels(same)))


def _point(
    name: str, size: int, holdout: float, val: float, family: str, clipping: str = "full"
) -> CurvePoint:
    return CurvePoint(name, size, holdout, 0.01, 90.0, val_sigma_mad=val, family=family, clipping=clipping)


def test_best_cnn_and_strongest_code_are_chosen_on_validation_and_compared_on_the_holdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = [
        # On validation cnn-a wins; on the holdout cnn-b would: the holdout must not choose.
        _point("cnn-a", 12000, 0.0160, 0.0150, "cnn"),
        _point("cnn-b", 12000, 0.0150, 0.0155, "cnn"),
        _point("code-x", 12000, 0.0200, 0.0190, "code"),
        _point("code-y", 12000, 0.0180, 0.0195, "code"),
        # a clipped code validates on easier galaxies: never the strongest; the null is no code
        _point("code-clipped", 12000, 0.0300, 0.0100, "code", "clipped"),
        _point("null", 12000, 0.0900, 0.0050, "null"),
        _point("cnn-a", 48000, 0.0120, 0.0115, "cnn"),
    ]
    points[0].crps = 0.011
    rows = curve_table(points)
    assert rows[0]["best cnn"] == "cnn-a" and rows[0]["strongest code"] == "code-x"
    assert rows[0]["best cnn / strongest code"] == pytest.approx(0.0160 / 0.0200)
    assert rows[0]["cnn-a crps"] == 0.011 and "cnn-b crps" not in rows[0]
    assert rows[1]["strongest code"] is None and rows[1]["best cnn / strongest code"] is None  # none made up
    monkeypatch.setenv("ASTROSPECT_RESULTS_DIR", str(tmp_path))
    record = results.read("learning-curve", record_learning_curve(points).parent)
    curve = record["tables"]["curve"]
    assert curve["columns"][1:4] == ["cnn-a sigma_MAD", "cnn-b sigma_MAD", "code-clipped sigma_MAD"]
    assert curve["rows"][0][-3:] == ["cnn-a", "code-x", 0.8]
    assert record["figures"]["best_cnn_over_strongest_code_at_12000"] == 0.8
    assert "best_cnn_over_strongest_code_at_largest" not in record["figures"]  # no code at 48k
    assert record["tables"]["crps"]["rows"] == [[12000, 0.011], [48000, None]]


def test_make_run_trains_full_and_clipped_by_default() -> None:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^RUN_CHALLENGERS \?= *(.*)$", makefile, re.MULTILINE)
    assert match, "Makefile has no RUN_CHALLENGERS default"
    names = [name for name in match.group(1).split(",") if name]
    chosen = [c.name for c in challengers.for_session(names)]  # empty: the registry's default set
    assert {"full", "clipped", "baseline-knn-full", "baseline-knn-clipped"} <= set(chosen)


def test_families_set_the_cnns_against_the_codes_and_leave_the_null_out() -> None:
    family = {c.name: c.model_family for c in challengers.registered()}
    assert family["cnn-ebv"] == family["pdf"] == "cnn"
    assert family["baseline-knn-full"] == "code" and family["baseline-nz-full"] == "null"
    assert all(family[c.name] == "cnn" for c in challengers.registered() if not c.baseline)
