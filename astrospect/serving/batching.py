"""Adaptive batching for the service: whatever queued while the model was busy becomes the next batch.

No timer: an idle service runs a lone request at once, and under load the batch grows to what arrived
during the previous model call (up to ``max_batch``), so batch size follows the traffic. One model call
runs at a time, in a worker thread, so the event loop keeps parsing and validating requests meanwhile.

Why not BentoML's ``@bentoml.api(batchable=True)``: its dispatcher learns a waiting time from recent
traffic and holds requests for it. Measured on this 2-core machine with the seed CNN, it held a lone
request ~60 ms after a burst (4.5 ms with this batcher), used ~0.4 ms more CPU per request, and sheds
with 503 once its learned latency passes ``max_latency_ms`` (docs/explanation/architecture.md#serving). Here overload is a bounded
queue: past ``max_queued`` cutouts a request is refused at once (503), never held until it times out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np

from astrospect.serving.schemas import FloatArray

# The model function: the cutouts and each one's E(B-V) (NaN where unknown) in, one answer per cutout along
# the first axis out (a redshift, or a row such as a PDF).
Predict = Callable[[FloatArray, FloatArray], np.ndarray]

# Tuned with `make bench-serving` on the 2-core machine. A seed-CNN batch costs ~1 ms plus ~0.2 ms per
# cutout through the compiled predict step and gains nothing past ~128 cutouts; 16 concurrent clients
# form batches of 8 to 16. The queue bound is ~2 s of model time: beyond it a request gets 503 at once.
MAX_BATCH_CUTOUTS = 128
MAX_QUEUED_CUTOUTS = 8192


class BatcherOverloadedError(RuntimeError):
    """More cutouts queued than the batcher accepts; the caller should answer 503 and the client retry."""


@dataclass
class _Job:
    images: FloatArray
    ebv: FloatArray  # one per cutout, NaN where unknown
    done: asyncio.Future[np.ndarray]


@dataclass
class BatchStats:
    """Counters for logs and the benchmark: how many model calls and how large they were."""

    batches: int = 0
    cutouts: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def record(self, size: int) -> None:
        self.batches += 1
        self.cutouts += size
        self.largest = max(self.largest, size)
        self.sizes[size] = self.sizes.get(size, 0) + 1


class AdaptiveBatcher:
    """Concatenates concurrent requests' cutouts into one model call and hands each its slice back."""

    def __init__(self, predict: Predict, max_batch: int, max_queued: int) -> None:
        if max_batch < 1 or max_queued < max_batch:
            raise ValueError(
                f"need 1 <= max_batch <= max_queued, got max_batch={max_batch}, max_queued={max_queued}"
            )
        self._predict = predict
        self.max_batch = max_batch
        self.max_queued = max_queued
        self._queue: deque[_Job] = deque()
        self._queued = 0  # cutouts waiting
        self._runner: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    async def predict(self, images: FloatArray, ebv: FloatArray | None = None) -> np.ndarray:
        """The model's answers for ``images`` (N, 32, 32, 5), one per cutout along the first axis; more than
        ``max_batch`` are sent in turns, so a large request shares the model with the requests that arrive
        meanwhile instead of blocking them. ``ebv``: each cutout's E(B-V), NaN where unknown; None, all
        unknown (the model function gets NaN, which a model without the E(B-V) input never reads)."""
        values = np.full(len(images), np.nan, np.float32) if ebv is None else np.asarray(ebv, np.float32)
        if values.shape != (len(images),):
            raise ValueError(f"ebv: expected one value per cutout ({len(images)}), got shape {values.shape}")
        parts = [
            await self._submit(images[start : start + self.max_batch], values[start : start + self.max_batch])
            for start in range(0, len(images), self.max_batch)
        ]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    async def _submit(self, images: FloatArray, ebv: FloatArray) -> np.ndarray:
        if self._queued + len(images) > self.max_queued:
            raise BatcherOverloadedError(
                f"server busy: {self._queued} cutouts already queued (limit {self.max_queued}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        job = _Job(images, ebv, loop.create_future())
        self._queue.append(job)
        self._queued += len(images)
        if self._runner is None:
            self._runner = loop.create_task(self._run())
        return await job.done

    async def _run(self) -> None:
        try:
            while self._queue:
                jobs = self._take_batch()
                batch = jobs[0].images if len(jobs) == 1 else np.concatenate([job.images for job in jobs])
                ebv = jobs[0].ebv if len(jobs) == 1 else np.concatenate([job.ebv for job in jobs])
                self.stats.record(len(batch))
                try:
                    answers = np.asarray(await anyio.to_thread.run_sync(self._predict, batch, ebv))
                    if answers.ndim == 0 or len(answers) != len(batch):
                        raise ValueError(
                            f"the model gave answers of shape {answers.shape} for {len(batch)} cutouts;"
                            " expected one per cutout along the first axis"
                        )
                # Whatever the model raised goes to every request of this batch (BentoML answers it with a
                # 500); catching less would leave those requests waiting forever.
                except Exception as error:  # noqa: BLE001
                    for job in jobs:
                        if not job.done.done():
                            job.done.set_exception(error)
                    continue
                start = 0
                for job in jobs:
                    stop = start + len(job.images)
                    if not job.done.done():  # a client that went away leaves a cancelled future
                        job.done.set_result(answers[start:stop])
                    start = stop
        finally:
            self._runner = None

    def _take_batch(self) -> list[_Job]:
        jobs = [self._queue.popleft()]
        size = len(jobs[0].images)
        while self._queue and size + len(self._queue[0].images) <= self.max_batch:
            job = self._queue.popleft()
            jobs.append(job)
            size += len(job.images)
        self._queued -= size
        return jobs
