"""The learning curve's nested training subsets, its table, and what `make run` trains."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from astrospect.data.dataset import read_labels, splits_from_labels
from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.models.learning_curve import CurvePoint, curve_table, nested_training_subset

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


def test_the_curve_table_gives_each_challengers_ratio_to_the_colour_knn() -> None:
    points = [
        CurvePoint("cnn-ebv", 6000, 0.020, 0.03, 1.0),
        CurvePoint("baseline-knn-full", 6000, 0.025, 0.04, 1.0, crps=0.0125),
        CurvePoint("pdf", 6000, 0.030, 0.05, 1.0, crps=0.0150),
        CurvePoint("cnn-ebv", 12000, 0.015, 0.02, 1.0),
    ]
    rows = curve_table(points)
    assert rows[0]["cnn-ebv / baseline-knn-full"] == pytest.approx(0.8)
    assert rows[0]["pdf crps / baseline-knn-full"] == pytest.approx(1.2)
    assert "cnn-ebv crps / baseline-knn-full" not in rows[0]  # a point model has no CRPS to compare
    assert "cnn-ebv / baseline-knn-full" not in rows[1]  # no k-NN at that size: no ratio made up
    assert [row["n_train"] for row in rows] == [6000, 12000]


def test_make_run_trains_full_and_clipped_by_default() -> None:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^RUN_CHALLENGERS \?= *(.*)$", makefile, re.MULTILINE)
    assert match, "Makefile has no RUN_CHALLENGERS default"
    names = [name for name in match.group(1).split(",") if name]
    chosen = [c.name for c in challengers.for_session(names)]  # empty: the registry's default set
    assert {"full", "clipped", "baseline-knn-full", "baseline-knn-clipped"} <= set(chosen)
