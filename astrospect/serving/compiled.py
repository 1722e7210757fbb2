"""The champion's forward pass for the service's batches: compiled with XLA once per batch-size bucket.

Profiled under load (docs/explanation/serving-profile.md), the model thread was the largest part of a
request's CPU that BentoML's empty endpoint does not have: ``predict_on_batch`` of the small CNN on 1-8
cutouts, most of it per-op dispatch rather than arithmetic. XLA (``jit_compile``) fuses the graph into a
few kernels; measured on the 2-core machine, a 4-cutout batch of the PDF CNN took ~2.0 ms CPU against
~2.4-3.2 ms. XLA compiles per input shape, so a batch is padded with blank cutouts (and unknown E(B-V)) up to
the next bucket and its answers sliced back: at most ``len(buckets)`` compilations, all made by
:meth:`CompiledForward.warm` before the service answers anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.serving.schemas import FloatArray

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class CompiledForward:
    """``model``'s outputs for up to ``max_batch`` cutouts, float32, one row per cutout (as
    ``predict_on_batch`` gives them)."""

    def __init__(self, model: Any, max_batch: int) -> None:
        # TensorFlow and Keras are imported here, as in the service's __init__, not at module import.
        import tensorflow as tf

        from astrospect.models.predict import model_inputs

        if max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1, got {max_batch}")
        self._model = model
        self._inputs = model_inputs
        self.buckets = (*(size for size in BUCKETS if size < max_batch), max_batch)
        self._call = tf.function(lambda inputs: model(inputs, training=False), jit_compile=True)

    def bucket(self, n: int) -> int:
        """The compiled batch size that ``n`` cutouts are padded to."""
        for size in self.buckets:
            if size >= n:
                return size
        raise ValueError(f"expected at most {self.buckets[-1]} cutouts per model call, got {n}")

    def warm(self, input_shape: tuple[int, ...]) -> None:
        """Compile every bucket now, so no request pays for it."""
        for size in self.buckets:
            self(np.zeros((size, *input_shape), np.float32), np.full(size, np.nan, np.float32))

    def __call__(self, images: FloatArray, ebv: FloatArray) -> npt.NDArray[np.float32]:
        n = len(images)
        size = self.bucket(n)
        if size != n:
            images = np.concatenate([images, np.zeros((size - n, *images.shape[1:]), np.float32)])
            ebv = np.concatenate([ebv, np.full(size - n, np.nan, np.float32)])
        outputs = self._call(self._inputs(self._model, images, ebv))
        return np.asarray(outputs, dtype=np.float32)[:n]
