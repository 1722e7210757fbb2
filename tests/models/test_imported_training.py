"""A short training run straight on `astrospect import` output (a channel-last HDF5 cube): imported shards
are training data as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrospect.data.dataset import select_splits
from astrospect.data.shards import list_shards
from astrospect.importers import hdf5
from astrospect.importers.columns import ColumnMap
from astrospect.importers.writer import run_import
from astrospect.models import registry as challengers
from astrospect.models.registry import TrainConfig
from astrospect.models.train import fit_seed_cnn
from harness import import_files

pytestmark = pytest.mark.model


def test_one_epoch_trains_on_an_imported_hdf5_cube(tmp_path: Path) -> None:
    galaxies = import_files.simulate(tmp_path / "sim", 160, seed=21)
    cube = import_files.write_hdf5_cube(tmp_path / "cube.h5", galaxies, size=64, channel_first=False)
    source = hdf5.Hdf5Source(
        cube, ColumnMap(objid="objID", specz="zspec", specz_err="zspec_err", ebv="ebv_sfd"), images="cutouts"
    )
    assert not source.channel_first
    run_import(source, tmp_path / "landing", shard_size=80, show_progress=False)
    shards = list_shards(tmp_path / "landing")
    assert len(shards) == 2

    splits = select_splits(shards, "full")
    trained = fit_seed_cnn(
        challengers.get("full"),
        splits,
        TrainConfig(out_dir=tmp_path / "run", epochs=1, batch_size=32, seed=0, precision="float32"),
    )
    assert trained.model_path is not None and trained.model_path.exists()
    assert len(trained.history["loss"]) == 1 and np.isfinite(trained.history["loss"][0])
