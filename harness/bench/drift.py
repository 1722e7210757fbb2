"""Drift step cost on a `make run`-sized night: 12,000 reference cutouts, 3,000 tonight, a seed CNN watched.

Timed in this process, beside the work it is weighed against:

* ``drift, cold``: the first night against a reference: its features and the CNN's predictions on it are
  computed (and cached), then tonight's;
* ``drift, warm``: every later night against the same reference: tonight's features and predictions only;
* ``one training epoch``: the seed CNN on the same 15,000 cutouts' training split (80%), in memory, the
  fastest a real epoch can be (the nightly streams from shards, and trains two variants for 11 to 40 epochs
  each, so the nightly is at least 22 of these).

The cutouts are synthetic blobs with sky noise: the drift features and the CNN cost the same whatever the
pixels show. Wall time depends on what else the machine runs, so the load average is printed beside it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from astrospect import results
from astrospect.data.shards import write_shard
from astrospect.data.store import sha256_file
from astrospect.drift import WatchedModel, measure_drift
from astrospect.gate.snapshot import Snapshot
from astrospect.settings import load_settings

MIN_NIGHTLY_EPOCHS = 2 * 11  # two variants, each at least patience (10) + 1 epochs


def write_blobs(folder: Path, n: int, shard_size: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    paths = []
    for k, start in enumerate(range(0, n, shard_size)):
        rows = min(shard_size, n - start)
        width = rng.uniform(1.5, 4.0, (rows, 1, 1, 1))
        blob = np.exp(-(xx**2 + yy**2) / (2 * width**2))
        images = rng.normal(0, 0.03, (rows, 5, 32, 32)) + rng.lognormal(1.0, 0.6, (rows, 5, 1, 1)) * blob
        objid = np.arange(start, start + rows, dtype=np.int64) + seed * 10**9
        paths.append(
            write_shard(
                folder / f"bench-{seed}-{k:03d}.h5",
                images.astype(np.float32),
                objid,
                rng.uniform(0, 0.5, rows),
                np.full(rows, 1e-4),
            )
        )
    return paths


def main(
    reference_n: int = typer.Option(12_000, help="Reference cutouts (the champion's training snapshot)."),
    tonight_n: int = typer.Option(3_000, help="Tonight's new cutouts (`make more-data` adds DEMO_N / 4)."),
) -> None:
    import keras

    from astrospect.models.cnn import build_seed_cnn, fit_input_scaling
    from astrospect.models.predict import predict_redshift

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference_paths = write_blobs(root / "reference", reference_n, 1000, seed=1)
        tonight = write_blobs(root / "tonight", tonight_n, 1000, seed=2)
        rows = [1000] * len(reference_paths)
        rows[-1] = reference_n - 1000 * (len(reference_paths) - 1)
        reference = Snapshot(
            "bench-reference",
            "",
            [str(path) for path in reference_paths],
            [sha256_file(path) for path in reference_paths],
            rows,
            reference_n,
            "",
        )
        settings = load_settings().replace(home=root / "home")

        from astrospect.data.shards import read_shard

        train = np.concatenate([read_shard(path).images for path in (*reference_paths, *tonight)])
        train = train[: int(0.8 * len(train))]
        model = build_seed_cnn(fit_input_scaling(train[:2048]), 0.0, 0.6)
        watched = WatchedModel("bench-seed-cnn", lambda images: predict_redshift(model, images))
        predict_redshift(model, train[:2048])  # trace the predict step once, as the served model does

        load = os.getloadavg()[0]
        load_before = round(load, 2)
        started = time.perf_counter()
        cold = measure_drift(settings, tonight, reference, watched)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = measure_drift(settings, tonight, reference, watched)
        warm_s = time.perf_counter() - started
        assert not cold.from_cache["features"] and warm.from_cache == {"features": True, "predictions": True}

        model.compile(optimizer="adam", loss="mse")
        labels = np.random.default_rng(0).uniform(0, 0.5, len(train)).astype(np.float32)
        model.fit(train[:1560], labels[:1560], batch_size=156, epochs=1, verbose=0)  # tracing, not timed
        started = time.perf_counter()
        model.fit(train, labels, batch_size=156, epochs=1, verbose=0)
        epoch_s = time.perf_counter() - started
        load = max(load, os.getloadavg()[0])

    nightly_s = MIN_NIGHTLY_EPOCHS * epoch_s
    print(
        f"\ndrift step cost: {reference_n:,} reference cutouts, {tonight_n:,} tonight, a seed CNN watched "
        f"(load average up to {load:.1f})"
    )
    print(f"{'step':<44}{'seconds':>9}{'of the nightly (>= 22 epochs)':>32}")
    for name, seconds in (
        ("drift, cold (reference computed and cached)", cold_s),
        ("drift, warm (reference from the cache)", warm_s),
        (f"one training epoch ({len(train):,} cutouts, in memory)", epoch_s),
    ):
        print(f"{name:<44}{seconds:>9.1f}{seconds / nightly_s:>31.1%}")
    print(f"where the warm step's time went: {warm.seconds}")
    print(f"nightly lower bound: {MIN_NIGHTLY_EPOCHS} epochs = {nightly_s:.0f} s")
    written = results.record(
        "bench-drift",
        title="The drift step's cost on a make-run-sized night",
        figures={
            "reference_cutouts": reference_n,
            "tonight_cutouts": tonight_n,
            "cold_seconds": round(cold_s, 1),
            "warm_seconds": round(warm_s, 1),
            "training_epoch_seconds": round(epoch_s, 1),
        },
        load_before=load_before,
    )
    print(f"results: {written}")


if __name__ == "__main__":
    typer.run(main)
