"""The service's adaptive batcher: concurrent requests share model calls and each gets its own answers."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from astrospect.serving.batching import AdaptiveBatcher, BatcherOverloadedError

pytestmark = pytest.mark.unit


class SlowModel:
    """Answers each cutout with its first pixel's value; the first call blocks until released, so requests
    pile up behind it the way they do behind a busy model."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def __call__(self, images: np.ndarray, ebv: np.ndarray) -> np.ndarray:
        if not self.calls:
            self.release.wait(timeout=10)
        self.calls.append(len(images))
        return images[:, 0, 0, 0].astype(np.float32)


def cutouts(values: list[float]) -> np.ndarray:
    images = np.zeros((len(values), 32, 32, 5), np.float32)
    images[:, 0, 0, 0] = values
    return images


def test_requests_that_queue_behind_a_busy_model_share_one_call() -> None:
    model = SlowModel()
    batcher = AdaptiveBatcher(model, max_batch=64, max_queued=1024)

    async def scenario() -> list[np.ndarray]:
        first = asyncio.create_task(batcher.predict(cutouts([0.5])))
        await asyncio.sleep(0.05)  # the first call is running (blocked) in its thread
        rest = [asyncio.create_task(batcher.predict(cutouts([k, k + 0.25]))) for k in range(1, 16)]
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first, *[await task for task in rest]]

    answers = asyncio.run(scenario())
    assert model.calls == [1, 30]  # 15 waiting requests of 2 cutouts became one batch
    assert answers[0].tolist() == [0.5]
    for k, answer in enumerate(answers[1:], start=1):
        assert answer.tolist() == [k, k + 0.25]
    assert batcher.stats.batches == 2
    assert batcher.stats.largest == 30


def test_batches_never_exceed_max_batch_and_large_requests_are_split() -> None:
    model = SlowModel()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch=8, max_queued=1024)

    async def scenario() -> tuple[np.ndarray, list[np.ndarray]]:
        large = asyncio.create_task(batcher.predict(cutouts([float(v) for v in range(20)])))
        small = [asyncio.create_task(batcher.predict(cutouts([100.0 + k]))) for k in range(5)]
        return await large, [await task for task in small]

    large, small = asyncio.run(scenario())
    assert large.tolist() == list(range(20))
    assert [answer.tolist() for answer in small] == [[100.0 + k] for k in range(5)]
    assert max(model.calls) <= 8
    assert sum(model.calls) == 25


def test_a_full_queue_refuses_at_once() -> None:
    model = SlowModel()
    batcher = AdaptiveBatcher(model, max_batch=4, max_queued=6)

    async def scenario() -> None:
        running = asyncio.create_task(batcher.predict(cutouts([1.0])))
        await asyncio.sleep(0.05)  # taken by the model: no longer queued
        queued = asyncio.create_task(batcher.predict(cutouts([2.0] * 4)))
        await asyncio.sleep(0)
        with pytest.raises(BatcherOverloadedError, match="4 cutouts already queued"):
            await batcher.predict(cutouts([3.0] * 3))
        model.release.set()
        assert (await running).tolist() == [1.0]
        assert (await queued).tolist() == [2.0] * 4
        assert (await batcher.predict(cutouts([3.0] * 3))).tolist() == [3.0] * 3  # room again

    asyncio.run(scenario())


def test_a_model_error_reaches_every_request_of_its_batch_and_the_batcher_goes_on() -> None:
    calls = []

    def flaky(images: np.ndarray, ebv: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return np.zeros(len(images), np.float32)

    batcher = AdaptiveBatcher(flaky, max_batch=8, max_queued=64)

    async def scenario() -> None:
        tasks = [asyncio.create_task(batcher.predict(cutouts([1.0]))) for _ in range(3)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(result, RuntimeError) for result in results)
        assert (await batcher.predict(cutouts([1.0, 2.0]))).tolist() == [0.0, 0.0]

    asyncio.run(scenario())


def test_limits_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="max_batch <= max_queued"):
        AdaptiveBatcher(lambda images, ebv: images, max_batch=16, max_queued=8)


def test_rows_per_cutout_come_back_to_their_own_requests() -> None:
    """A PDF champion answers a row per cutout (its PDF and summary): each request gets its own rows."""

    def rows(images: np.ndarray, ebv: np.ndarray) -> np.ndarray:
        first_pixel = images[:, 0, 0, 0]
        return np.stack([first_pixel, 2 * first_pixel, 3 * first_pixel], axis=1)

    batcher = AdaptiveBatcher(rows, max_batch=4, max_queued=64)

    async def scenario() -> list[np.ndarray]:
        tasks = [batcher.predict(cutouts([k, k + 0.5, k + 0.75])) for k in range(4)]
        return list(await asyncio.gather(*tasks))

    for k, answer in enumerate(asyncio.run(scenario())):
        assert answer.shape == (3, 3)  # split over two model calls of at most 4 cutouts, then joined
        assert answer[:, 0].tolist() == [k, k + 0.5, k + 0.75]
        assert answer[:, 2].tolist() == [3 * k, 3 * (k + 0.5), 3 * (k + 0.75)]


def test_a_model_answering_the_wrong_number_of_cutouts_fails_its_requests() -> None:
    batcher = AdaptiveBatcher(lambda images, ebv: np.zeros(len(images) + 1), max_batch=8, max_queued=64)
    with pytest.raises(ValueError, match="expected one per cutout"):
        asyncio.run(batcher.predict(cutouts([1.0, 2.0])))


class EbvRecorder:
    """Answers each cutout with its E(B-V) and records each call's cutouts and E(B-V), so a test sees what
    the model was fed; the first call blocks until released, so later requests join one batch."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.release = threading.Event()

    def __call__(self, images: np.ndarray, ebv: np.ndarray) -> np.ndarray:
        if not self.calls:
            self.release.wait(timeout=10)
        self.calls.append((images[:, 0, 0, 0].copy(), ebv.copy()))
        return ebv


def test_ebv_travels_beside_its_cutouts_through_concatenated_and_split_batches() -> None:
    model = EbvRecorder()
    batcher = AdaptiveBatcher(model, max_batch=4, max_queued=64)

    async def scenario() -> list[np.ndarray]:
        first = asyncio.create_task(batcher.predict(cutouts([0.0]), np.array([0.5], np.float32)))
        await asyncio.sleep(0.05)  # the first call is running (blocked): the rest queue behind it
        rest = [
            asyncio.create_task(batcher.predict(cutouts([1.0, 2.0]), np.array([0.01, 0.02], np.float32))),
            asyncio.create_task(batcher.predict(cutouts([3.0]))),  # no E(B-V): unknown
            asyncio.create_task(
                batcher.predict(cutouts([4.0, 5.0, 6.0]), np.array([0.04, np.nan, 0.06], np.float32))
            ),
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first, *[await task for task in rest]]

    answers = asyncio.run(scenario())
    # Each request gets its own E(B-V) back, in its cutouts' order, NaN where it gave none.
    np.testing.assert_array_equal(answers[0], np.float32([0.5]))
    np.testing.assert_array_equal(answers[1], np.float32([0.01, 0.02]))
    np.testing.assert_array_equal(answers[2], np.float32([np.nan]))
    np.testing.assert_array_equal(answers[3], np.float32([0.04, np.nan, 0.06]))
    # ... and inside each model call every cutout sat beside its own E(B-V): the first two waiting requests
    # were concatenated, the third (3 more would pass max_batch 4) went on in the next call.
    fed = [(pixels.tolist(), ebv) for pixels, ebv in model.calls]
    assert [pixels for pixels, _ in fed] == [[0.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    np.testing.assert_array_equal(fed[1][1], np.float32([0.01, 0.02, np.nan]))
    np.testing.assert_array_equal(fed[2][1], np.float32([0.04, np.nan, 0.06]))


def test_a_request_over_max_batch_has_its_ebv_split_with_its_cutouts() -> None:
    model = EbvRecorder()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch=4, max_queued=64)
    ebv = np.arange(10, dtype=np.float32) / 100
    answer = asyncio.run(batcher.predict(cutouts([float(v) for v in range(10)]), ebv))
    np.testing.assert_array_equal(answer, ebv)
    for pixels, fed in model.calls:
        np.testing.assert_array_equal(fed, pixels.astype(np.float32) / 100)
    assert [len(pixels) for pixels, _ in model.calls] == [4, 4, 2]


def test_without_ebv_the_model_gets_nan_for_every_cutout() -> None:
    model = EbvRecorder()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch=8, max_queued=64)
    answer = asyncio.run(batcher.predict(cutouts([1.0, 2.0, 3.0])))
    ((_, fed),) = model.calls
    assert fed.dtype == np.float32
    assert fed.shape == (3,)
    assert np.isnan(fed).all()
    assert np.isnan(answer).all()


def test_ebv_of_another_length_than_the_cutouts_is_refused_before_queueing() -> None:
    model = EbvRecorder()
    model.release.set()
    batcher = AdaptiveBatcher(model, max_batch=8, max_queued=64)
    with pytest.raises(ValueError, match=r"ebv: expected one value per cutout \(2\), got shape \(3,\)"):
        asyncio.run(batcher.predict(cutouts([1.0, 2.0]), np.zeros(3, np.float32)))
    assert model.calls == []
