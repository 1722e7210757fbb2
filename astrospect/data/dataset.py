"""From shards to training inputs: a cheap label pass, then ``tf.data`` streaming of the pixels.

The label pass reads only ``objid`` and the redshifts of every shard (a few bytes per galaxy) to decide,
per row, its split and whether the clipping keeps it; it runs once per session (:func:`select_splits`).
The pixel pass then streams each shard in chunks and yields only the chosen rows, so the whole set is
never in memory (docs/explanation/architecture.md, "Data flow").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.data.clipping import UNCLIPPED, Clipping, clipping_keeps
from astrospect.data.shards import CUTOUTS_INPUT, DEFAULT_CHUNK, EBV_INPUT, Cutouts, inspect_shard, iter_shard
from astrospect.data.splits import Split, assign_split
from astrospect.settings import CUTOUT_SIZE, N_BANDS

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class RowSelection:
    """Which rows of each shard belong to one split of one clipping."""

    shards: tuple[Path, ...]
    rows: tuple[npt.NDArray[np.int64], ...]  # sorted row indices, one array per shard
    redshift: npt.NDArray[np.float32]  # labels of the chosen rows, shard by shard

    def __len__(self) -> int:
        return int(sum(len(r) for r in self.rows))


@dataclass(frozen=True)
class Splits:
    """The three splits of one clipping, computed once per session and handed to every stage."""

    clipping: Clipping
    train: RowSelection
    val: RowSelection
    holdout: RowSelection  # never clipped: every challenger is scored on the same galaxies

    @property
    def shards(self) -> tuple[Path, ...]:
        return self.holdout.shards


@dataclass(frozen=True)
class ShardLabels:
    """One shard's labels: all the label pass reads (a few bytes per galaxy)."""

    shard: Path
    objid: npt.NDArray[np.int64]
    redshift: npt.NDArray[np.float32]


def read_labels(shards: Sequence[Path]) -> list[ShardLabels]:
    """The label pass: check each shard's structure, then read only ``objid`` and the redshifts."""
    labels = []
    for shard in shards:
        inspect_shard(shard, require_labels=True)
        with h5py.File(shard, "r") as handle:
            labels.append(
                ShardLabels(Path(shard), handle["objid"][()], handle["specz_redshift"][()].astype(np.float32))
            )
    return labels


def select_splits(shards: Sequence[Path], clipping: Clipping) -> Splits:
    """Train, validation and holdout rows from one label pass; the clipping drops rows from train and val."""
    return splits_from_labels(read_labels(shards), clipping)


def select_holdout(shards: Sequence[Path]) -> RowSelection:
    """The fixed holdout of ``shards`` (no clipping applies to it)."""
    return _selection(read_labels(shards), Split.HOLDOUT, UNCLIPPED)


def splits_from_labels(labels: Sequence[ShardLabels], clipping: Clipping) -> Splits:
    return Splits(
        clipping,
        train=_selection(labels, Split.TRAIN, clipping),
        val=_selection(labels, Split.VAL, clipping),
        holdout=_selection(labels, Split.HOLDOUT, UNCLIPPED),
    )


def _selection(labels: Sequence[ShardLabels], split: Split, clipping: Clipping) -> RowSelection:
    chosen_rows = []
    redshifts = []
    for shard in labels:
        keep = (assign_split(shard.objid) == split.value) & clipping_keeps(clipping, shard.redshift)
        chosen_rows.append(np.flatnonzero(keep).astype(np.int64))
        redshifts.append(shard.redshift[keep])
    return RowSelection(
        shards=tuple(shard.shard for shard in labels),
        rows=tuple(chosen_rows),
        redshift=np.concatenate(redshifts) if redshifts else np.zeros(0, np.float32),
    )


def iter_selected_cutouts(
    selection: RowSelection, *, chunk_size: int = DEFAULT_CHUNK, shard_order: Sequence[int] | None = None
) -> Iterator[Cutouts]:
    """Yield chunks of the selected rows as :class:`Cutouts`, with whatever each shard carries (``ebv``...)."""
    order = range(len(selection.shards)) if shard_order is None else shard_order
    for index in order:
        wanted = selection.rows[index]
        if wanted.size == 0:
            continue
        start = 0
        for chunk in iter_shard(selection.shards[index], chunk_size=chunk_size):
            stop = start + len(chunk)
            inside = wanted[(wanted >= start) & (wanted < stop)] - start
            if inside.size:
                yield chunk.take(inside)
            start = stop


def iter_selected(
    selection: RowSelection, *, chunk_size: int = DEFAULT_CHUNK, shard_order: Sequence[int] | None = None
) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
    """Yield (images, redshift, objid) chunks of the selected rows, in the model's layout."""
    for chunk in iter_selected_cutouts(selection, chunk_size=chunk_size, shard_order=shard_order):
        assert chunk.redshift is not None
        yield chunk.images, chunk.redshift, chunk.objid


def sample_images(selection: RowSelection, max_images: int) -> npt.NDArray[np.float32]:
    """The first ``max_images`` selected cutouts in shard order: a deterministic sample for fitting scalings."""
    parts: list[npt.NDArray[np.float32]] = []
    taken = 0
    for images, _, _ in iter_selected(selection):
        parts.append(images[: max_images - taken])
        taken += len(parts[-1])
        if taken >= max_images:
            break
    return np.concatenate(parts)


def make_tf_dataset(
    selection: RowSelection,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int = 8192,
    augment: bool = False,
    with_ebv: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline streaming the selected rows; shard order and rows shuffled per epoch, seeded.

    ``augment`` applies one of the 8 rotations/flips per cutout: a galaxy's redshift does not depend on its
    orientation on the sky, so this multiplies the training set for free (as Pasquet et al. 2019 do).
    ``with_ebv`` gives the model a dict of inputs, ``cutouts`` and ``ebv`` (NaN where a shard has none:
    :class:`astrospect.models.cnn.ForegroundInput` turns that into zero plus a mask).
    """
    import tensorflow as tf

    epoch_counter = {"epoch": 0}

    def generate() -> Iterator[tuple[Any, npt.NDArray[np.float32]]]:
        rng = np.random.default_rng([seed, epoch_counter["epoch"]])
        epoch_counter["epoch"] += 1
        order = rng.permutation(len(selection.shards)).tolist() if shuffle else None
        for chunk in iter_selected_cutouts(selection, shard_order=order):
            assert chunk.redshift is not None
            inputs = {CUTOUTS_INPUT: chunk.images, EBV_INPUT: ebv_or_nan(chunk)} if with_ebv else chunk.images
            yield inputs, chunk.redshift

    images_spec = tf.TensorSpec(shape=(None, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), dtype=tf.float32)
    per_cutout = tf.TensorSpec(shape=(None,), dtype=tf.float32)
    inputs_spec = {CUTOUTS_INPUT: images_spec, EBV_INPUT: per_cutout} if with_ebv else images_spec
    signature = (inputs_spec, per_cutout)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if augment:
        dataset = dataset.enumerate().map(
            lambda index, example: _rotate_or_flip(example, tf.stack([tf.constant(seed, tf.int64), index])),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    cardinality = -(-len(selection) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(cardinality))


def ebv_or_nan(chunk: Cutouts) -> npt.NDArray[np.float32]:
    """Each cutout's E(B-V), NaN where its shard has none (the model's documented fallback input)."""
    if chunk.ebv is None:
        return np.full(len(chunk), np.nan, np.float32)
    return chunk.ebv.astype(np.float32)


def _rotate_or_flip(example: tuple[Any, tf.Tensor], seed: tf.Tensor) -> tuple[Any, tf.Tensor]:
    """One of the 8 symmetries of the square, drawn from a stateless seed (reproducible, any parallelism).
    Only the image turns: E(B-V), where it rides along, belongs to the galaxy, not to its orientation."""
    import tensorflow as tf

    inputs, redshift = example
    image = inputs[CUTOUTS_INPUT] if isinstance(inputs, dict) else inputs
    quarter_turns = tf.random.stateless_uniform([], seed, minval=0, maxval=4, dtype=tf.int32)
    image = tf.image.rot90(image, quarter_turns)
    image = tf.image.stateless_random_flip_left_right(image, seed + 1)
    return ({**inputs, CUTOUTS_INPUT: image} if isinstance(inputs, dict) else image), redshift
