"""Training speed: the input pipeline (streamed shards vs in-memory tensors), then the CNN challengers in
each precision this machine has.

The in-memory run is the ceiling (no I/O, no Python generator); the ratio says what streaming costs.
Same model, batch size and number of steps in both; the first epoch (graph tracing) is not timed.
The second table trains the seed CNN and `cnn-ebv` from in-memory tensors with the recipe's optimizer in
float32 and in the mixed precision ``auto`` picks here, ratios against the seed in float32, all in one run:
what each precision buys per step of wall time (its accuracy is the learning curve's business).
The third (``docs/results/bench-training-pdf.json``) times the PDF challengers of issue 33 against `pdf` in
the same run: training and prediction images/s of `pdf`, `pasquet` and one `pdf-ensemble` member, and the
wall time those rates project for a 20-epoch training at 12k, 48k and 100k galaxies on this machine.
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
from astrospect.data.splits import TRAIN_FRACTION, VAL_FRACTION
from astrospect.models.cnn import (
    build_pdf_cnn,
    build_photoz_cnn,
    build_seed_cnn,
    fit_input_scaling,
    fit_photometry_scaling,
)
from astrospect.models.pasquet import build_pasquet_cnn
from astrospect.models.predict import batched_outputs
from astrospect.models.registry import TrainConfig
from astrospect.models.train import configure_device, make_optimizer
from astrospect.pdf.bins import DEFAULT_BINS, encode_redshift_bins

PROJECTED_SIZES = (12_000, 48_000, 100_000)  # galaxies: make run's night, the learning curve's 48k and 100k
PROJECTED_EPOCHS = 20


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
    pipeline: bool = typer.Option(
        True, "--pipeline/--no-pipeline", help="Also time the input pipeline and precisions (bench-training)."
    ),
    pdf_n: int = typer.Option(
        624, help="Cutouts per timed epoch of the PDF challengers (bench-training-pdf)."
    ),
    pdf_epochs: int = typer.Option(1, help="Timed epochs per PDF challenger and round, after one untimed."),
    pdf_rounds: int = typer.Option(3, help="Rounds timing each PDF challenger once; the median is kept."),
) -> None:
    if pipeline:
        _pipeline_bench(n, shard_size, epochs, batch_size)
    _pdf_challengers_bench(pdf_n, batch_size, pdf_epochs, pdf_rounds)


def _pipeline_bench(n: int, shard_size: int, epochs: int, batch_size: int) -> None:
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


def _pdf_challengers_bench(n: int, batch_size: int, epochs: int, rounds: int) -> None:
    """Training and predict images/s of `pdf` (the baseline), `pasquet` and a `pdf-ensemble` member (`pdf`
    with another seed: its ratio to `pdf` is this run's noise), medians over ``rounds``, from in-memory
    tensors, training in the precision ``auto`` picks here and predicting in float32 (the saved model's);
    then the projected wall time of a PROJECTED_EPOCHS-epoch training: per epoch, the training split at the
    training rate and the validation split at the predict rate."""
    import tensorflow as tf

    load_before = results.load_average()
    device, precision = configure_device("auto")
    images = _bench_cutouts(n, seed=0)
    rng = np.random.default_rng(1)
    z = rng.uniform(0.02, 0.6, len(images)).astype(np.float32)
    ebv = rng.uniform(0.0, 0.1, len(images)).astype(np.float32)
    targets = np.asarray(encode_redshift_bins(z, DEFAULT_BINS), np.float32)
    sample = images[:2048]
    bins, prior = DEFAULT_BINS, DEFAULT_BINS.histogram(z)
    builders = {
        "pdf": (
            0,
            lambda: build_pdf_cnn(
                fit_input_scaling(sample), bins, prior=prior, photometry=fit_photometry_scaling(sample)
            ),
        ),
        "pasquet": (0, lambda: build_pasquet_cnn(fit_input_scaling(sample), bins, prior=prior)),
        "pdf-ensemble member": (
            1,
            lambda: build_pdf_cnn(
                fit_input_scaling(sample), bins, prior=prior, photometry=fit_photometry_scaling(sample)
            ),
        ),
    }
    steps = -(-len(images) // batch_size)
    inputs = {"cutouts": images, "ebv": ebv}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size).prefetch(2)
    trainable: dict[str, keras.Model] = {}
    served: dict[str, keras.Model] = {}
    for name, (seed, build) in builders.items():
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(seed)
        trainable[name] = build()
        trainable[name].compile(
            optimizer=make_optimizer(TrainConfig(out_dir=Path("."), seed=seed), steps),
            loss="categorical_crossentropy",
        )
        trainable[name].fit(dataset, epochs=1, shuffle=False, verbose=0)  # tracing is not timed
        keras.mixed_precision.set_global_policy("float32")
        keras.utils.set_random_seed(seed)
        served[name] = build()
        batched_outputs(served[name], images, ebv)  # nor here
    # Rounds, each timing every model once: a load that changes during the run touches all of them alike,
    # and each rate is its median over the rounds.
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in builders}
    for _ in range(rounds):
        for name in builders:
            start = time.perf_counter()
            trainable[name].fit(dataset, epochs=epochs, shuffle=False, verbose=0)
            train_rate = len(images) * epochs / (time.perf_counter() - start)
            start = time.perf_counter()
            batched_outputs(served[name], images, ebv)
            timings[name].append((train_rate, len(images) / (time.perf_counter() - start)))
    rates = {
        name: (float(np.median([t for t, _ in pairs])), float(np.median([p for _, p in pairs])))
        for name, pairs in timings.items()
    }
    base_train, base_predict = rates["pdf"]
    members = TrainConfig(out_dir=Path(".")).ensemble_members

    def projected_minutes(train_rate: float, predict_rate: float, galaxies: int) -> float:
        per_epoch = TRAIN_FRACTION * galaxies / train_rate + VAL_FRACTION * galaxies / predict_rate
        return PROJECTED_EPOCHS * per_epoch / 60.0

    projection_rows: list[list[results.Scalar]] = [
        [name, *[round(projected_minutes(*rates[name], size), 1) for size in PROJECTED_SIZES]]
        for name in rates
    ]
    projection_rows.append(
        [
            f"pdf-ensemble ({members} members)",
            *[
                round(members * projected_minutes(*rates["pdf-ensemble member"], size), 1)
                for size in PROJECTED_SIZES
            ],
        ]
    )
    print(
        f"\nPDF challengers ({device}; training {precision}, predict float32; {len(images)} cutouts, {epochs} timed epoch(s))"
    )
    print(f"{'model':<22}{'train img/s':>12}{'vs pdf':>8}{'predict img/s':>15}{'vs pdf':>8}")
    for name, (train_rate, predict_rate) in rates.items():
        print(
            f"{name:<22}{train_rate:>12.1f}{train_rate / base_train:>8.3f}{predict_rate:>15.1f}{predict_rate / base_predict:>8.3f}"
        )
    print(
        f"projected {PROJECTED_EPOCHS}-epoch training, minutes at {', '.join(f'{s:,}' for s in PROJECTED_SIZES)} galaxies:"
    )
    for row in projection_rows:
        print("  " + "  ".join(str(value) for value in row))
    written = results.record(
        "bench-training-pdf",
        title="PDF challengers: training and predict images/s against pdf, and projected training wall time",
        figures={
            "device": device,
            "training_precision": precision,
            "timed_cutouts": len(images),
            "timed_epochs": epochs,
            "rounds": rounds,
            "batch_size": batch_size,
            "ensemble_members": members,
            "projected_epochs": PROJECTED_EPOCHS,
            "pasquet_train_over_pdf": round(rates["pasquet"][0] / base_train, 4),
            "pasquet_predict_over_pdf": round(rates["pasquet"][1] / base_predict, 4),
        },
        tables={
            "rates": results.table(
                ["model", "training images/s", "vs pdf", "predict images/s", "vs pdf"],
                [
                    [name, round(t, 1), round(t / base_train, 3), round(p, 1), round(p / base_predict, 3)]
                    for name, (t, p) in rates.items()
                ],
            ),
            "projection": results.table(
                ["model", *[f"{size // 1000}k galaxies (min)" for size in PROJECTED_SIZES]], projection_rows
            ),
        },
        load_before=load_before,
    )
    print(f"results: {written}")


def _bench_cutouts(n: int, seed: int) -> np.ndarray:
    """``n`` raw channels-last cutouts like the pipeline bench's: a round blob of random brightness per band
    in sky noise (the rates do not depend on what the pixels show)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    blob = np.exp(-(xx**2 + yy**2) / 8.0).astype(np.float32)[None, :, :, None]
    brightness = rng.uniform(1, 50, (n, 1, 1, 5)).astype(np.float32)
    return (rng.normal(0, 0.03, (n, 32, 32, 5)).astype(np.float32) + brightness * blob).astype(np.float32)


if __name__ == "__main__":
    typer.run(main)
