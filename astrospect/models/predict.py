"""Batch prediction: raw cutouts in, redshifts (or their PDFs) out, from a saved model; shards with or without
labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.shards import iter_shard, resolve_shards
from astrospect.models.cnn import CUTOUTS_INPUT, EBV_INPUT, load_model, pdf_bins, takes_ebv
from astrospect.pdf.bins import POINT_ESTIMATE, RedshiftBins, RedshiftPdfs, write_qp
from astrospect.settings import get_logger

log = get_logger(__name__)
PREDICT_BATCH = 2048


Ebv = npt.NDArray[np.float32] | None


def model_inputs(
    model: keras.Model, images: npt.NDArray[np.float32], ebv: Ebv = None
) -> npt.NDArray[np.float32] | dict[str, npt.NDArray[np.float32]]:
    """What ``model`` takes for these cutouts: the cutouts alone, or with each one's E(B-V) for a model that
    has that input (NaN where it is not known: the model's zero-plus-mask fallback). The one place that
    decides, for training's evaluation, batch prediction, drift and serving alike."""
    if not takes_ebv(model):
        return images
    values = np.full(len(images), np.nan, np.float32) if ebv is None else np.asarray(ebv, np.float32)
    if values.shape != (len(images),):
        raise ValueError(f"ebv: expected one value per cutout ({len(images)}), got shape {values.shape}")
    return {CUTOUTS_INPUT: images, EBV_INPUT: values}


def batched_outputs(
    model: keras.Model, images: npt.NDArray[np.float32], ebv: Ebv = None
) -> list[npt.NDArray[np.float32]]:
    """``predict_on_batch`` over PREDICT_BATCH-sized slices (it avoids ``predict``'s per-call setup)."""
    return [
        np.asarray(
            model.predict_on_batch(
                model_inputs(
                    model,
                    images[start : start + PREDICT_BATCH],
                    None if ebv is None else ebv[start : start + PREDICT_BATCH],
                )
            ),
            dtype=np.float32,
        )
        for start in range(0, len(images), PREDICT_BATCH)
    ]


def predict_redshift(
    model: keras.Model, images: npt.NDArray[np.float32], ebv: Ebv = None
) -> npt.NDArray[np.float32]:
    """Redshifts for channels-last raw cutouts (and their E(B-V), for a model that takes it)."""
    outputs = [batch.reshape(-1) for batch in batched_outputs(model, images, ebv)]
    return np.concatenate(outputs) if outputs else np.zeros(0, np.float32)


def predict_pdf(
    model: keras.Model, images: npt.NDArray[np.float32], ebv: Ebv = None, bins: RedshiftBins | None = None
) -> RedshiftPdfs:
    """The redshift PDFs of a PDF model (:func:`astrospect.models.cnn.build_pdf_cnn`) for the cutouts, checked
    here, once. ``bins`` are the model's (found in it when not given; a caller predicting many batches
    passes them)."""
    bins = bins or pdf_model_bins(model, model.name)
    outputs = batched_outputs(model, images, ebv)
    if outputs and outputs[0].ndim != 2:
        raise ValueError(f"model {model.name!r} gives {outputs[0].shape[1:]} per cutout, not a PDF over bins")
    return RedshiftPdfs(np.concatenate(outputs) if outputs else np.zeros((0, bins.n)), bins)


class NotAPdfModelError(ValueError):
    """PDFs asked of a point-estimate model (one without a PDF head)."""


def pdf_model_bins(model: keras.Model, source: Path | str) -> RedshiftBins:
    """The bins of a PDF model; a :class:`NotAPdfModelError` naming ``source`` for a point model."""
    bins = pdf_bins(model)
    if bins is None:
        raise NotAPdfModelError(
            f"{source}: model {model.name!r} is a point-estimate model (no PDF head): it gives one redshift per"
            " cutout, not a PDF; PDFs need a PDF model (astrospect.models.cnn.build_pdf_cnn, the pdf challenger)"
        )
    return bins


def point_redshift(
    model: keras.Model, images: npt.NDArray[np.float32], ebv: Ebv = None
) -> npt.NDArray[np.float32]:
    """Redshifts from either kind of model: a point model's output, a PDF model's POINT_ESTIMATE."""
    bins = pdf_bins(model)
    if bins is None:
        return predict_redshift(model, images, ebv)
    return predict_pdf(model, images, ebv, bins).point(POINT_ESTIMATE).astype(np.float32)


def predict_shards(model: keras.Model, shards: Sequence[Path]) -> pd.DataFrame:
    """One row per cutout: shard, objid, z_pred, and z_spec where the shard has labels."""
    frames = []
    for shard in shards:
        for chunk in iter_shard(shard, require_labels=False):
            frame = pd.DataFrame(
                {
                    "shard": shard.name,
                    "objid": chunk.objid,
                    "z_pred": point_redshift(model, chunk.images, chunk.ebv),
                }
            )
            if chunk.redshift is not None:
                frame["z_spec"] = chunk.redshift
            frames.append(frame)
        log.info("predicted %s", shard.name)
    return pd.concat(frames, ignore_index=True)


def predict_to_csv(model_path: Path, source: Path, out_csv: Path) -> pd.DataFrame:
    predictions = predict_shards(load_model(model_path), resolve_shards(source))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(out_csv, index=False)
    log.info("wrote %d predictions to %s", len(predictions), out_csv)
    return predictions


def predict_to_qp(model_path: Path, source: Path, out: Path) -> int:
    """The PDF of every cutout of ``source`` as a qp HDF5 file (``qp.read`` opens it), with ``objid`` and,
    where the shards have labels, ``z_spec`` (NaN for unlabelled shards) as ancillary columns. Returns the
    number of PDFs; never replaces ``out``."""
    model = load_model(model_path)
    bins = pdf_model_bins(model, model_path)
    pdfs, objid, z_spec = [], [], []
    labelled = False
    for shard in resolve_shards(source):
        for chunk in iter_shard(shard, require_labels=False):
            pdfs.append(predict_pdf(model, chunk.images, chunk.ebv, bins))
            objid.append(chunk.objid)
            labelled |= chunk.redshift is not None
            z_spec.append(
                chunk.redshift if chunk.redshift is not None else np.full(len(chunk), np.nan, np.float32)
            )
        log.info("predicted the PDFs of %s", shard.name)
    ids = np.concatenate(objid)
    ancil: dict[str, npt.ArrayLike] = {"objid": ids}
    if labelled:
        ancil["z_spec"] = np.concatenate(z_spec)
    write_qp(out, RedshiftPdfs.concatenate(pdfs), ancil)
    log.info("wrote %d PDFs over %d bins to %s", len(ids), bins.n, out)
    return len(ids)
