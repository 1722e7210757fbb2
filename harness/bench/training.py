"""Training speed: the input pipeline (streamed shards vs in-memory tensors), then the CNN challengers in
each precision this machine has.

The in-memory run is the ceiling (no I/O, no Python generator); the ratio says what streaming costs.
Same model, batch size and number of steps in both; the first epoch (graph tracing) is not timed.
The second table trains the seed CNN and `cnn-ebv` from in-memory tensors with the recipe's optimizer in
float32 and in the mixed precision ``auto`` picks here, ratios against the seed in float32, all in one run:
what each precision buys per step of wall time (its accuracy is the learning curve's business).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import typer

from astrospect import results
from astrospect.data.clipping import UNCLIPPED
from astrospect.data.dataset import make_tf_dataset, select_splits
from astrospect.data.shards import write_shard
from astrospect.models.cnn import (
    build_photoz_cnn,
    build_seed_cnn,
    fit_input_scaling,
    fit_photometry_scaling,
)
from astrospect.models.registry import TrainConfig
from astrospect.models.train import configure_device, make_optimizer


def _write_bench_shards(folder: Path, n: int, shard_size: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    blob = np.exp(-(xx**2 + yy**2) / 8.0).astype(np.float32)
    paths = []
    for k, start in enumerate(range(0, n, shard_size)):
        rows = min(shard_size, n - start)
        brightness = rng.uniform(1, 50, (rows, 5, 1, 1)).astype(np.float32)
        images = rng.normal(0, 0.03, (rows, 5, 32, 32)).astype(np.float32) + brightness * blob
        objid = np.arange(start, start + rows, dtype=np.int64) + 10**15
        paths.append(
            write_shard(
                folder / f"bench-{k:03d}.h5", images, objid, rng.uniform(0, 0.5, rows), np.full(rows, 1e-4)
            )
        )
    return paths


def _timed_fit(model: keras.Model, dataset: object, epochs: int, n_images: int) -> float:
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)  # warm-up: tracing and autotuning are not timed
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    return n_images * epochs / (time.perf_counter() - start)


def main(
    n: int = typer.Option(12_000, help="Cutouts written to the benchmark shards."),
    shard_size: int = typer.Option(2_000),
    epochs: int = typer.Option(2, help="Timed epochs per pipeline."),
    batch_size: int = typer.Option(156),
) -> None:
    import tensorflow as tf

    load_before = results.load_average()
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        shards = _write_bench_shards(Path(tmp), n, shard_size, seed=0)
        rows = select_splits(shards, UNCLIPPED).train
        streamed = make_tf_dataset(rows, batch_size, shuffle=True, seed=0)
        images = np.concatenate([batch[0] for batch in streamed.as_numpy_iterator()])
        labels = np.concatenate([batch[1] for batch in streamed.as_numpy_iterator()])
        in_memory = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(8192, seed=0)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        model = build_seed_cnn(fit_input_scaling(images[:2048]), 0.0, 0.5)
        model.compile(optimizer="adam", loss="mse")
        memory_rate = _timed_fit(model, in_memory, epochs, len(images))
        shard_rate = _timed_fit(model, streamed, epochs, len(images))
    device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    print(
        f"\ntraining input pipeline ({device}, {len(images)} train cutouts, batch {batch_size}, {epochs} timed epochs)"
    )
    print(f"{'pipeline':<28}{'images/s':>12}{'ratio':>10}")
    print(f"{'in-memory tensors (ceiling)':<28}{memory_rate:>12.0f}{1.0:>10.2f}")
    print(f"{'streamed from HDF5 shards':<28}{shard_rate:>12.0f}{shard_rate / memory_rate:>10.2f}")
    precision_rows = _precision_table(images, labels, batch_size, epochs)
    written = results.record(
        "bench-training",
        title="Training input pipeline: streamed from shards vs in-memory",
        figures={
            "device": device,
            "in_memory_images_per_s": round(memory_rate),
            "streamed_images_per_s": round(shard_rate),
            "streamed_over_in_memory": round(shard_rate / memory_rate, 2),
        },
        tables={
            "precision": results.table(
                ["model", "precision", "images/s", "vs seed CNN float32"],
                [
                    [name, precision, round(rate), round(rate / precision_rows[0][2], 2)]
                    for name, precision, rate in precision_rows
                ],
            )
        },
        load_before=load_before,
    )
    print(f"results: {written}")


def _precision_table(
    images: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int
) -> list[tuple[str, str, float]]:
    """images/s of each CNN challenger in float32 and in the mixed precision ``auto`` picks on this machine."""
    import tensorflow as tf

    _, mixed = configure_device("auto")
    precisions = ["float32"] + ([mixed] if mixed != "float32" else [])
    ebv = np.full(len(images), 0.03, np.float32)
    builders = {
        "seed CNN (full)": lambda: build_seed_cnn(fit_input_scaling(images[:2048]), 0.0, 0.5),
        "cnn-ebv": lambda: build_photoz_cnn(
            fit_input_scaling(images[:2048]), fit_photometry_scaling(images[:2048]), 0.0, 0.5
        ),
    }
    steps = -(-len(images) // batch_size)
    rows = []
    for name, build in builders.items():
        for precision in precisions:
            keras.mixed_precision.set_global_policy(precision)
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(optimizer=make_optimizer(TrainConfig(out_dir=Path(".")), steps), loss="mse")
            inputs = {"cutouts": images, "ebv": ebv} if name == "cnn-ebv" else images
            dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).prefetch(2)
            rows.append((name, precision, _timed_fit(model, dataset, epochs, len(images))))
    keras.mixed_precision.set_global_policy("float32")
    base = rows[0][2]
    print(f"\nCNN challengers, in-memory, recipe optimizer ({epochs} timed epochs each)")
    print(f"{'model':<20}{'precision':<18}{'images/s':>10}{'vs seed f32':>13}")
    for name, precision, rate in rows:
        print(f"{name:<20}{precision:<18}{rate:>10.0f}{rate / base:>13.2f}")
    return rows


if __name__ == "__main__":
    typer.run(main)
