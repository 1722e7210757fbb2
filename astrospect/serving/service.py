"""The BentoML service that serves the registry's champion (docs/explanation/architecture.md, "Serving").

``predict`` takes a JSON batch of raw cutouts (one flat array per cutout), ``predict_binary`` the same
cutouts as raw float32 bytes with their shape in a header, ``predict_file`` an uploaded HDF5 shard or
``.npy`` array, ``metadata`` says which model answers; BentoML adds ``/livez``, ``/readyz`` and
``/metrics``. A PDF champion (:func:`astrospect.models.cnn.pdf_bins` is not None) also answers each cutout's
PDF summary on those routes, its PDFs on ``predict_pdf`` / ``predict_pdf_binary``, and a qp file from
``predict_file`` with ``format=qp`` (:mod:`astrospect.serving.pdfs`); a point champion answers those 409. Every request body is decoded and validated (:mod:`astrospect.serving.decoding`,
:mod:`astrospect.serving.uploads`) before it can join a batch, so a bad request gets a 4xx that says what
was expected and never fails the requests batched with it. The status codes, the error body and
``/docs.json`` are :mod:`astrospect.serving.contract`'s. Concurrent requests share model calls through
:class:`~astrospect.serving.batching.AdaptiveBatcher`.

A champion with an E(B-V) input (:func:`astrospect.models.cnn.takes_ebv`) gets each cutout's E(B-V) where the
request gives it: the JSON routes' optional ``ebv`` field, an uploaded shard's ``ebv`` dataset. Elsewhere
(binary bodies, ``.npy`` uploads, null values) it gets NaN, its unknown-E(B-V) fallback;
:func:`astrospect.models.predict.model_inputs` decides what the model is fed, so any other champion ignores it.

The Keras model is loaded once, in ``__init__``: BentoML serves no request, ``/readyz`` included, before
that returns. Start with ``make serve`` (the newest bento ``astrospect deploy`` built) or
``astrospect serve --from-source``.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import anyio.to_thread
import bentoml
import numpy as np
import numpy.typing as npt
from starlette.responses import Response

from astrospect.pdf.bins import RedshiftBins
from astrospect.serving.batching import (
    MAX_BATCH_CUTOUTS,
    MAX_QUEUED_CUTOUTS,
    AdaptiveBatcher,
    BatcherOverloadedError,
)
from astrospect.serving.card import champion_bento_model, model_card
from astrospect.serving.contract import (
    HDF5,
    ROUTES,
    BadRequest,
    Busy,
    NoPdfs,
    UnsupportedMediaType,
    openapi_document,
)
from astrospect.serving.decoding import (
    BinaryCutouts,
    EbvPerCutout,
    FlatCutouts,
    Layout,
    ebv_per_cutout,
    from_flat,
)
from astrospect.serving.guards import RequestGuard
from astrospect.serving.monitoring import observe_batch, observe_served
from astrospect.serving.pdfs import (
    QP_FILENAME,
    ServedPdfs,
    pdf_rows,
    qp_file,
    served_redshift,
    warm_qp,
)
from astrospect.serving.schemas import (
    FilePrediction,
    FileRow,
    FloatArray,
    ModelMetadata,
    PdfPrediction,
    Prediction,
)
from astrospect.serving.uploads import UnsupportedUploadError, UploadError, file_cutout_limit, read_upload
from astrospect.settings import get_logger, load_settings

log = get_logger(__name__)
# Read when BentoML imports the service, as it must be: the worker count and the request limits are fixed by
# the decorator and the route annotations below. It is the settings' one object (astrospect.settings).
SETTINGS = load_settings()
MAX_FILE_CUTOUTS = file_cutout_limit(SETTINGS.serving_max_body_bytes)

REQUEST_TIMEOUT_S = 60
FileAnswer = Literal["json", "qp"]
# The JSON routes' optional `ebv` field: its values are checked by its type, its length against `images` by
# ebv_per_cutout.
EbvField = Annotated[list[float | None] | None, EbvPerCutout(SETTINGS.serving_max_cutouts)]


@dataclass(frozen=True)
class Answer:
    """The champion's answer for one request's cutouts: redshifts, and a PDF champion's PDFs."""

    redshift: npt.NDArray[np.float64]
    pdfs: ServedPdfs | None  # None for a point-estimate champion

    def prediction(self, identity: dict[str, str]) -> Prediction:
        summaries = None if self.pdfs is None else self.pdfs.summaries()
        return Prediction(**identity, redshift=self.redshift.tolist(), pdf_summary=summaries)


class BinaryInput(BinaryCutouts):
    """``predict_binary``'s body, with this server's cutout limit."""

    max_cutouts = SETTINGS.serving_max_cutouts


@bentoml.service(
    name="astrospect-photoz",
    # One worker process per core (ASTROSPECT_SERVING_WORKERS), each with its own model and batcher, and
    # TensorFlow limited to its share of the cores (settings.py). Measured on 2 cores with 16 clients
    # (make bench-serving-curve, docs/explanation/studies.md, "Serving"): 1 worker lost throughput at 32 clients and did not hold a
    # better p99 at 16; 2 intra-op threads cost more CPU per request for no p99: the Python side of a request
    # (HTTP, decoding, validation) is most of its cost.
    workers=SETTINGS.serving_workers,
    traffic={"timeout": REQUEST_TIMEOUT_S},
    # Per-request access log lines cost ~0.4 ms CPU at hundreds of requests/s; requests are still counted
    # and timed in /metrics.
    logging={"access": {"enabled": False}},
)
class PhotoZ:
    """Photometric redshifts from raw ugriz cutouts, by the MLflow registry's champion."""

    def __init__(self) -> None:
        # TensorFlow is imported here, not at module import; importing astrospect.models.cnn registers the
        # BandStretch layer that the saved model uses.
        import tensorflow as tf

        from astrospect.models.cnn import load_model, pdf_bins
        from astrospect.models.predict import predict_pdf, predict_redshift

        tf.config.threading.set_intra_op_parallelism_threads(SETTINGS.serving_intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(SETTINGS.serving_inter_op_threads)

        stored = champion_bento_model(SETTINGS)
        self.card = model_card(stored)
        model = load_model(self.card.keras_path)
        self.bins = pdf_bins(model)  # None: a point-estimate model
        bins = self.bins

        def answer(images: FloatArray, ebv: FloatArray) -> np.ndarray:
            if bins is None:
                return predict_redshift(model, images, ebv)
            return pdf_rows(predict_pdf(model, images, ebv, bins))  # the summaries too, once per batch

        def predict(images: FloatArray, ebv: FloatArray) -> np.ndarray:
            answers = answer(images, ebv)
            redshift = answers if bins is None else served_redshift(answers, bins)
            # /metrics: the batch size reached, and each cutout's input and answer histograms, once per batch
            # (the profile found the per-request calls' numpy overhead on the event loop).
            observe_batch(len(images))
            observe_served(images, redshift)
            return answers

        # Trace the compiled predict step for the batch sizes the batcher forms, so no request pays for it.
        # (XLA per batch-size bucket was measured instead: the padded buckets cost more CPU than they saved,
        # docs/explanation/serving-profile.md.)
        for size in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, MAX_BATCH_CUTOUTS):
            answer(np.zeros((size, *self.card.input_shape), np.float32), np.full(size, np.nan, np.float32))
        if bins is not None:
            log.info("qp imported and a qp file written in %.2f s (warm-up)", warm_qp(bins))
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
            "serving %s version %s (run %s, bento model %s), %s",
            self.card.model_name,
            self.card.model_version,
            self.card.run_id,
            stored.tag,
            "a point-estimate model" if bins is None else f"a PDF model over {bins.n} bins",
        )

    def __is_ready__(self) -> bool:
        return getattr(self, "loaded", False)

    async def _answer(self, images: FloatArray, ebv: FloatArray | None = None) -> Answer:
        try:
            answers = await self.batcher.predict(images, ebv)
        except BatcherOverloadedError as error:
            raise Busy(str(error)) from error
        if self.bins is None:
            answer = Answer(np.asarray(answers, np.float64), None)
        else:
            pdfs = ServedPdfs.from_rows(answers, self.bins)
            answer = Answer(pdfs.redshift, pdfs)
        return answer

    def _pdf_bins(self, asked: str) -> RedshiftBins:
        """The champion's bins, or the documented 409 for a point-estimate champion."""
        if self.bins is None:
            raise NoPdfs(
                f"{asked}: the champion ({self.card.model_name} version {self.card.model_version}) is a"
                " point-estimate model with no PDF head: it gives one redshift per cutout and no PDF."
                " /predict and /predict_binary answer its redshifts; PDFs need a PDF champion."
            )
        return self.bins

    async def _pdf_prediction(
        self, images: FloatArray, route: str, ebv: FloatArray | None = None
    ) -> PdfPrediction:
        bins = self._pdf_bins(route)
        answer = await self._answer(images, ebv)
        assert answer.pdfs is not None
        return PdfPrediction(
            **self.identity,
            bin_edges=list(bins.edges),
            probabilities=answer.pdfs.pdfs.probabilities.tolist(),
            redshift=answer.redshift.tolist(),
            pdf_summary=answer.pdfs.summaries(),
        )

    @bentoml.api
    async def predict(
        self,
        images: Annotated[FloatArray, FlatCutouts(SETTINGS.serving_max_cutouts)],
        layout: Layout,
        ebv: EbvField = None,
    ) -> Prediction:
        """Redshifts for a JSON batch of raw ugriz cutouts in nanomaggies, one flat array of 5120 fluxes per
        cutout in the axis order `layout` names (channels-last: 32 x 32 x 5; band-first: 5 x 32 x 32), and
        optionally each cutout's E(B-V) (`ebv`, null where unknown). From a PDF champion, `redshift` is each
        PDF's median and `pdf_summary` summarises it."""
        cutouts = from_flat(images, layout, max_cutouts=SETTINGS.serving_max_cutouts)
        answer = await self._answer(cutouts, ebv_per_cutout(ebv, len(cutouts)))
        return answer.prediction(self.identity)

    @bentoml.api(input_spec=BinaryInput)
    async def predict_binary(self, images: FloatArray) -> Prediction:
        """Redshifts for raw little-endian float32 cutouts in the body (application/octet-stream), their shape
        in the Cutout-Shape header: N,5,32,32 band-first or N,32,32,5 channels-last (64x64 centre-cropped).
        No E(B-V): an E(B-V) champion answers with its unknown-E(B-V) fallback (`predict` takes `ebv`)."""
        return (await self._answer(images)).prediction(self.identity)

    @bentoml.api
    async def predict_pdf(
        self,
        images: Annotated[FloatArray, FlatCutouts(SETTINGS.serving_max_cutouts)],
        layout: Layout,
        ebv: EbvField = None,
    ) -> PdfPrediction:
        """Redshift PDFs for a JSON batch of cutouts (and their optional `ebv`), as `predict` takes them: the
        bin edges once, and per cutout the probabilities of the bins, the median and the summary. 409 from a
        point-estimate champion."""
        cutouts = from_flat(images, layout, max_cutouts=SETTINGS.serving_max_cutouts)
        return await self._pdf_prediction(cutouts, "predict_pdf", ebv_per_cutout(ebv, len(cutouts)))

    @bentoml.api(input_spec=BinaryInput)
    async def predict_pdf_binary(self, images: FloatArray) -> PdfPrediction:
        """Redshift PDFs for raw float32 cutouts, as `predict_binary` takes them (no E(B-V)); the answer of
        `predict_pdf`. 409 from a point-estimate champion."""
        return await self._pdf_prediction(images, "predict_pdf_binary")

    # The JSON answer is the documented schema; the qp file is a Response BentoML sends as it is, and the
    # contract adds its media type to the document.
    @bentoml.api(output_spec=FilePrediction)
    async def predict_file(self, file: Path, format: FileAnswer = "json") -> FilePrediction | Response:
        """Redshifts for every cutout of an uploaded HDF5 shard (labels optional; its `ebv` dataset, when it
        has one, goes to an E(B-V) champion) or .npy array (either layout, no E(B-V)); one row per cutout, with
        its objid when the file has one, and a PDF champion's summary.
        `format=qp` answers a PDF champion's PDFs as a qp HDF5 file instead (application/x-hdf5, which
        qp.read opens saved as .hdf5; objid as ancillary data); 409 from a point-estimate champion."""
        bins = self._pdf_bins("predict_file with format=qp") if format == "qp" else None
        try:
            upload = await anyio.to_thread.run_sync(read_upload, file, MAX_FILE_CUTOUTS)
        except UnsupportedUploadError as error:
            raise UnsupportedMediaType(str(error)) from error
        except UploadError as error:
            raise BadRequest(str(error)) from error
        answer = await self._answer(upload.images, upload.ebv)
        if bins is not None:
            assert answer.pdfs is not None
            content = await anyio.to_thread.run_sync(qp_file, answer.pdfs.pdfs, upload.objid)
            return Response(
                content,
                media_type=HDF5,
                headers={"Content-Disposition": f'attachment; filename="{QP_FILENAME}"'},
            )
        objid = [None] * len(answer.redshift) if upload.objid is None else [int(v) for v in upload.objid]
        summaries = [None] * len(objid) if answer.pdfs is None else answer.pdfs.summaries()
        rows = [
            FileRow(index=i, objid=objid[i], redshift=float(z), pdf_summary=summaries[i])
            for i, z in enumerate(answer.redshift)
        ]
        return FilePrediction(**self.identity, file_format=upload.file_format, n=len(rows), rows=rows)

    @bentoml.api
    async def metadata(self) -> ModelMetadata:
        """The served model: registry name, version, run, training data set version, holdout metric table."""
        return ModelMetadata(
            **self.identity,
            bento_model=self.card.bento_model,
            dataset_version=self.card.dataset_version,
            metrics=self.card.metrics,
            pdf_bins=None if self.bins is None else self.bins.n,
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
