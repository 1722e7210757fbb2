"""The BentoML service that serves the registry's champion (DESIGN.md §8).

``predict`` takes a JSON batch of raw cutouts (one flat array per cutout), ``predict_binary`` the same
cutouts as raw float32 bytes with their shape in a header, ``predict_file`` an uploaded HDF5 shard or
``.npy`` array, ``metadata`` says which model answers; BentoML adds ``/livez``, ``/readyz`` and
``/metrics``. Every request body is decoded and validated (:mod:`astrospect.serving.decoding`,
:mod:`astrospect.serving.uploads`) before it can join a batch, so a bad request gets a 4xx that says what
was expected and never fails the requests batched with it. The status codes, the error body and
``/docs.json`` are :mod:`astrospect.serving.contract`'s. Concurrent requests share model calls through
:class:`~astrospect.serving.batching.AdaptiveBatcher`.

The Keras model is loaded once, in ``__init__``: BentoML serves no request, ``/readyz`` included, before
that returns. Start with ``make serve`` (the newest bento ``astrospect deploy`` built) or
``astrospect serve --from-source``.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated, Any, cast

import anyio.to_thread
import bentoml
import numpy as np

from astrospect.deploy import champion_bento_model, model_card
from astrospect.serving.batching import (
    MAX_BATCH_CUTOUTS,
    MAX_QUEUED_CUTOUTS,
    AdaptiveBatcher,
    BatcherOverloadedError,
    tensorflow_threads,
)
from astrospect.serving.contract import ROUTES, BadRequest, Busy, UnsupportedMediaType, openapi_document
from astrospect.serving.decoding import BinaryCutouts, FlatCutouts, Layout, from_flat
from astrospect.serving.guards import RequestGuard
from astrospect.serving.monitoring import observe_served
from astrospect.serving.schemas import FilePrediction, FileRow, FloatArray, ModelMetadata, Prediction
from astrospect.serving.uploads import UnsupportedUploadError, UploadError, file_cutout_limit, read_upload
from astrospect.settings import get_logger, load_settings

log = get_logger(__name__)
SETTINGS = load_settings()
MAX_FILE_CUTOUTS = file_cutout_limit(SETTINGS.serving_max_body_bytes)

REQUEST_TIMEOUT_S = 60


class BinaryInput(BinaryCutouts):
    """``predict_binary``'s body, with this server's cutout limit."""

    max_cutouts = SETTINGS.serving_max_cutouts


@bentoml.service(
    name="astrospect-photoz",
    # One worker process per core (ASTROSPECT_SERVING_WORKERS), each with its own model and batcher, and
    # TensorFlow limited to its share of the cores. Measured on 2 cores with 16 clients: 2 workers with 1
    # TensorFlow thread each served ~650 req/s (p99 ~40-60 ms), 1 worker with 2 threads ~350 req/s (p99
    # ~70-130 ms): the Python side of a request (HTTP, JSON, validation) is most of its cost.
    workers=SETTINGS.serving_workers,
    traffic={"timeout": REQUEST_TIMEOUT_S},
    # Per-request access log lines cost ~0.4 ms CPU at hundreds of requests/s; requests are still counted
    # and timed in /metrics.
    logging={"access": {"enabled": False}},
)
class PhotoZ:
    """Photometric redshifts from raw ugriz cutouts, by the MLflow registry's champion."""

    def __init__(self) -> None:
        # TensorFlow is imported here, not at module import; importing astrospect.model registers the
        # BandStretch layer that the saved model uses.
        import tensorflow as tf

        from astrospect.model import load_model
        from astrospect.predict import predict_redshift

        threads = tensorflow_threads(SETTINGS.serving_workers)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

        stored = champion_bento_model(SETTINGS)
        self.card = model_card(stored)
        model = load_model(self.card.keras_path)

        def predict(images: FloatArray) -> np.ndarray:
            return predict_redshift(model, images)

        # Trace the compiled predict step for the batch sizes the batcher forms, so no request pays for it.
        for size in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, MAX_BATCH_CUTOUTS):
            predict(np.zeros((size, *self.card.input_shape), np.float32))
        self.batcher = AdaptiveBatcher(predict, MAX_BATCH_CUTOUTS, MAX_QUEUED_CUTOUTS)
        self.identity = {
            "model_name": self.card.model_name,
            "model_version": self.card.model_version,
            "run_id": self.card.run_id,
        }
        # Python's full garbage collections scanned TensorFlow's millions of startup objects: measured,
        # every request stalled ~700 ms every ~4 s under load. Frozen objects are never scanned again.
        gc.collect()
        gc.freeze()
        self.loaded = True
        log.info(
            "serving %s version %s (run %s, bento model %s)",
            self.card.model_name,
            self.card.model_version,
            self.card.run_id,
            stored.tag,
        )

    def __is_ready__(self) -> bool:
        return getattr(self, "loaded", False)

    async def _redshift(self, images: FloatArray) -> list[float]:
        try:
            redshift = await self.batcher.predict(images)
        except BatcherOverloadedError as error:
            raise Busy(str(error)) from error
        observe_served(images, redshift)  # input and answer histograms on /metrics
        return [float(z) for z in redshift]

    @bentoml.api
    async def predict(
        self, images: Annotated[FloatArray, FlatCutouts(SETTINGS.serving_max_cutouts)], layout: Layout
    ) -> Prediction:
        """Redshifts for a JSON batch of raw ugriz cutouts in nanomaggies, one flat array of 5120 fluxes per
        cutout in the axis order `layout` names (channels-last: 32 x 32 x 5; band-first: 5 x 32 x 32)."""
        cutouts = from_flat(images, layout, max_cutouts=SETTINGS.serving_max_cutouts)
        return Prediction(**self.identity, redshift=await self._redshift(cutouts))

    @bentoml.api(input_spec=BinaryInput)
    async def predict_binary(self, images: FloatArray) -> Prediction:
        """Redshifts for raw little-endian float32 cutouts in the body (application/octet-stream), their shape
        in the Cutout-Shape header: N,5,32,32 band-first or N,32,32,5 channels-last (64x64 centre-cropped)."""
        return Prediction(**self.identity, redshift=await self._redshift(images))

    @bentoml.api
    async def predict_file(self, file: Path) -> FilePrediction:
        """Redshifts for every cutout of an uploaded HDF5 shard (DESIGN.md §3, labels optional) or .npy
        array (either layout); one row per cutout, with its objid when the file has one."""
        try:
            upload = await anyio.to_thread.run_sync(read_upload, file, MAX_FILE_CUTOUTS)
        except UnsupportedUploadError as error:
            raise UnsupportedMediaType(str(error)) from error
        except UploadError as error:
            raise BadRequest(str(error)) from error
        redshift = await self._redshift(upload.images)
        objid = [None] * len(redshift) if upload.objid is None else [int(value) for value in upload.objid]
        rows = [FileRow(index=i, objid=objid[i], redshift=z) for i, z in enumerate(redshift)]
        return FilePrediction(**self.identity, file_format=upload.file_format, n=len(rows), rows=rows)

    @bentoml.api
    async def metadata(self) -> ModelMetadata:
        """The served model: registry name, version, run, training data set version, holdout metric table."""
        return ModelMetadata(
            **self.identity,
            bento_model=self.card.bento_model,
            dataset_version=self.card.dataset_version,
            metrics=self.card.metrics,
            max_cutouts_per_request=SETTINGS.serving_max_cutouts,
            max_cutouts_per_file=MAX_FILE_CUTOUTS,
            max_body_bytes=SETTINGS.serving_max_body_bytes,
        )


# BentoML's decorator returns a Service object; its type stubs still call it the class.
cast(Any, PhotoZ).add_asgi_middleware(
    RequestGuard,
    max_bytes=SETTINGS.serving_max_body_bytes,
    media_types={path: route.media_type for path, route in ROUTES.items()},
    document=lambda: openapi_document(cast(Any, PhotoZ).openapi_spec.asdict(), ROUTES),
)
