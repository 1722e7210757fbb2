"""Serving: single-cutout requests from concurrent clients against a real ``bentoml serve`` (DESIGN.md §8).

Printed in one table, all measured in this run on this machine: the naive baseline (one ``model.predict``
per request, in-process), MLflow's pyfunc ``predict`` per request and the compiled predict step per
request (both in-process), the served champion under 16 concurrent clients (loopback, bounded count) on
the JSON path (``predict``) and the binary path (``predict_binary``), and the ceiling (batched predictions
in-process). Ratios are to the naive baseline and to the ceiling. Below the table, each served path's
server CPU per request (every worker and thread) divided by the compiled predict step's CPU per call:
unlike latency, that ratio does not depend on what else the machine is running.

The model is an untrained seed CNN (speed does not depend on the weights), saved as an MLflow model and
installed with the same code as ``astrospect deploy`` into a temporary BentoML store; the server is
``astrospect serve --bento <that bento>``. The in-process figures are taken before the server starts,
so the two never share the CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import CUTOUT_SIZE, N_BANDS, load_settings
from harness.serving_process import served as served_process
from harness.serving_process import tree_cpu_seconds

LATENCY_TARGET_MS = 50.0
SPEEDUP_TARGET = 5.0
BINARY_CPU_RATIO_TARGET = 2.0  # server CPU per binary request / compiled predict step CPU per call


@dataclass(frozen=True)
class Row:
    path: str
    requests: int
    per_second: float  # requests/s (cutouts/s for the ceiling)
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None


def synthetic_cutouts(n: int, seed: int) -> npt.NDArray[np.float32]:
    """Galaxy-like cutouts (a bright centre on sky noise), channels-last, nanomaggies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CUTOUT_SIZE, 0:CUTOUT_SIZE] - (CUTOUT_SIZE - 1) / 2
    sigma = rng.uniform(1.5, 4.0, (n, 1, 1, 1))
    profile = np.exp(-(xx[None, :, :, None] ** 2 + yy[None, :, :, None] ** 2) / (2 * sigma**2))
    flux = rng.lognormal(1.0, 0.8, (n, 1, 1, N_BANDS))
    noise = rng.normal(0, 0.05, (n, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS))
    return (flux * profile + noise).astype(np.float32)


@dataclass(frozen=True)
class Served:
    """One load test through the server: its row and the CPU it cost per request."""

    row: Row
    server_cpu_ms: float  # every worker and thread of ``bentoml serve``
    client_cpu_ms: float  # the load generator


def timed_calls(call: Callable[[], object], n: int, path: str) -> tuple[Row, float]:
    """The row, and the CPU milliseconds per call (every thread of this process)."""
    call()  # warm-up: tracing and first-call setup are not timed
    latencies = []
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return Row(path, n, n / elapsed, float(p50), float(p99), 0), 1000 * cpu / n


def batched_ceiling(predict: Callable[[Any], object], images: np.ndarray, seconds: float, path: str) -> Row:
    predict(images)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(images)
        done += len(images)
    return Row(path, done, done / (time.perf_counter() - start))


Request = tuple[dict[str, str], bytes]  # headers, body


async def load_test(
    url: str, requests: list[Request], clients: int, per_client: int, warmup: int, path: str
) -> Row:
    """``clients`` closed-loop clients, each sending ``per_client`` single-cutout requests in turn."""
    import gc

    import aiohttp

    # This process holds TensorFlow and MLflow: a full garbage collection here would pause every client at
    # once and be counted as server latency. Frozen objects are never scanned.
    gc.collect()
    gc.freeze()

    latencies: list[float] = []
    statuses: list[int] = []

    async def client(session: aiohttp.ClientSession, k: int, n: int, record: bool) -> None:
        for j in range(n):
            headers, body = requests[(k * 7 + j) % len(requests)]
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            if record:
                latencies.append(time.perf_counter() - began)
                statuses.append(response.status)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        await asyncio.gather(*(client(session, k, max(1, warmup // clients), False) for k in range(clients)))
        start = time.perf_counter()
        await asyncio.gather(*(client(session, k, per_client, True) for k in range(clients)))
        elapsed = time.perf_counter() - start
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    errors = sum(status != 200 for status in statuses)
    return Row(
        f"bentoml serve, {path}, {clients} clients",
        len(statuses),
        len(statuses) / elapsed,
        p50,
        p99,
        errors,
    )


def install_bench_model(home: Path) -> tuple[str, Path]:
    """An untrained seed CNN as an MLflow model, installed like ``astrospect deploy`` does; (bento, keras file)."""
    import mlflow.tensorflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from astrospect.deploy import Champion, install, keras_file, use_bentoml_home
    from astrospect.model import build_seed_cnn, fit_input_scaling

    os.environ["BENTOML_HOME"] = str(home / "bentoml")  # a store of its own, whatever the shell points at
    use_bentoml_home(replace(load_settings(), home=home))  # before BentoML opens any store
    model = build_seed_cnn(fit_input_scaling(synthetic_cutouts(256, seed=1)), 0.0, 0.6)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), "cutouts")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,), "redshift")]),
    )
    saved = home / "mlflow-model"
    mlflow.tensorflow.save_model(
        model, str(saved), signature=signature, pip_requirements=["tensorflow", "keras"]
    )
    champion = Champion("astrospect-photoz", "1", "benchmark", str(saved), "synthetic", {})
    deployment = install(champion)
    return deployment.bento, keras_file(saved)


def main(
    clients: int = typer.Option(16, help="Concurrent closed-loop clients."),
    per_client: int = typer.Option(100, help="Timed single-cutout requests per client."),
    warmup: int = typer.Option(128, help="Untimed requests before the timed ones."),
    naive_calls: int = typer.Option(40, help="model.predict calls for the naive baseline."),
    ceiling_seconds: float = typer.Option(3.0, help="Seconds of batched prediction for the ceiling."),
) -> None:
    import keras
    import mlflow.pyfunc
    import tensorflow as tf

    from astrospect.serving.batching import MAX_BATCH_CUTOUTS, tensorflow_threads

    # The in-process rows run TensorFlow with the threads one server worker has, so "the compiled predict
    # step" is the step each worker runs, and its CPU per call the fair denominator for the server's.
    threads = tensorflow_threads(load_settings().serving_workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    keras.utils.disable_interactive_logging()  # pyfunc's predict would print a progress bar per call

    from astrospect.model import load_model
    from astrospect.predict import predict_redshift

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        bento, keras_path = install_bench_model(home)
        began = time.perf_counter()
        model = load_model(keras_path)
        keras_load_s = time.perf_counter() - began
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # our own model's saved custom layer
        began = time.perf_counter()
        pyfunc = mlflow.pyfunc.load_model(str(home / "mlflow-model"))
        pyfunc_load_s = time.perf_counter() - began
        one = synthetic_cutouts(1, seed=2)
        batch = synthetic_cutouts(MAX_BATCH_CUTOUTS, seed=3)
        naive, _ = timed_calls(
            lambda: model.predict(one, verbose=0), naive_calls, "naive: model.predict per request"
        )
        via_pyfunc, _ = timed_calls(
            lambda: pyfunc.predict(one), naive_calls, "MLflow pyfunc predict per request"
        )
        direct, step_cpu_ms = timed_calls(
            lambda: predict_redshift(model, one), 10 * naive_calls, "compiled predict step per request"
        )
        ceiling = batched_ceiling(
            lambda x: predict_redshift(model, x),
            batch,
            ceiling_seconds,
            f"ceiling: batches of {MAX_BATCH_CUTOUTS}",
        )
        cutouts = synthetic_cutouts(64, seed=4)
        expected = predict_redshift(model, cutouts)
        paths: dict[str, list[Request]] = {
            "predict": [
                (
                    {"content-type": "application/json"},
                    json.dumps(
                        {"images": cutouts[i : i + 1].reshape(1, -1).tolist(), "layout": "channels-last"}
                    ).encode(),
                )
                for i in range(len(cutouts))
            ],
            "predict_binary": [
                (
                    {
                        "content-type": "application/octet-stream",
                        SHAPE_HEADER: f"1,{CUTOUT_SIZE},{CUTOUT_SIZE},{N_BANDS}",
                    },
                    cutouts[i : i + 1].astype("<f4").tobytes(),
                )
                for i in range(len(cutouts))
            ],
        }
        env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
        env.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
        served: dict[str, Served] = {}
        served_z: dict[str, np.ndarray] = {}
        with served_process(env, home / "serve.log", "--bento", bento) as (url, server_pid):
            for path, requests in paths.items():
                server_cpu, client_cpu = tree_cpu_seconds(server_pid), time.process_time()
                row = asyncio.run(load_test(f"{url}/{path}", requests, clients, per_client, warmup, path))
                server_cpu = tree_cpu_seconds(server_pid) - server_cpu
                client_cpu = time.process_time() - client_cpu
                sent = row.requests + max(1, warmup // clients) * clients
                served[path] = Served(row, 1000 * server_cpu / sent, 1000 * client_cpu / sent)
            whole_json = json.dumps(
                {"images": cutouts.reshape(len(cutouts), -1).tolist(), "layout": "channels-last"}
            )
            served_z["predict"] = _served_redshift(
                f"{url}/predict", {"content-type": "application/json"}, whole_json.encode()
            )
            served_z["predict_binary"] = _served_redshift(
                f"{url}/predict_binary",
                {"content-type": "application/octet-stream", SHAPE_HEADER: ",".join(map(str, cutouts.shape))},
                cutouts.astype("<f4").tobytes(),
            )
    load_after = os.getloadavg()[0]
    rows = [served[path].row for path in paths]
    print_table([naive, via_pyfunc, direct, *rows, ceiling], naive, ceiling)
    print(
        f"compiled predict step: {step_cpu_ms:.2f} ms CPU per call (1 cutout, {threads} TensorFlow thread(s) as in each worker)"
    )
    for path, result in served.items():
        print(
            f"CPU per request, {path}: server {result.server_cpu_ms:.2f} ms (all workers and threads),"
            f" {result.server_cpu_ms / step_cpu_ms:.2f}x the predict step; load generator {result.client_cpu_ms:.2f} ms"
        )
    print(f"model load: Keras .keras file {keras_load_s:.2f} s, MLflow pyfunc {pyfunc_load_s:.2f} s")
    for path, redshift in served_z.items():
        print(
            f"served ({path}) vs in-process predictions: max |dz| = {np.max(np.abs(redshift - expected)):.2e}"
        )
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before, {load_after:.1f} after"
        " (other jobs share it: latency depends on them, the CPU ratios do not)"
    )
    binary, as_json = served["predict_binary"], served["predict"]
    targets = [
        (
            f"throughput >= {SPEEDUP_TARGET:.0f}x naive (JSON)",
            as_json.row.per_second / naive.per_second >= SPEEDUP_TARGET,
        ),
        (f"p99 < {LATENCY_TARGET_MS:.0f} ms (binary)", (binary.row.p99_ms or 0.0) < LATENCY_TARGET_MS),
        (
            f"binary server CPU <= {BINARY_CPU_RATIO_TARGET:.0f}x predict step",
            binary.server_cpu_ms / step_cpu_ms <= BINARY_CPU_RATIO_TARGET,
        ),
        ("0 errors", all(result.row.errors == 0 for result in served.values())),
    ]
    print("targets: " + ", ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in targets))
    if any(result.row.errors for result in served.values()):
        raise typer.Exit(1)


def _served_redshift(url: str, headers: dict[str, str], body: bytes) -> np.ndarray:
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, headers=headers), timeout=60
    ) as response:
        return np.array(json.loads(response.read())["redshift"])


def print_table(rows: list[Row], naive: Row, ceiling: Row) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print("\nserving: seed CNN, single-cutout requests (the bentoml serve rows timed per request path)")
    header = (
        f"{'path':<46}{'calls':>7}{'throughput':>16}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'x naive':>9}{'of ceiling':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = f"{row.per_second:,.0f} {'cutouts' if row is ceiling else 'req'}/s"
        errors = "-" if row.errors is None else str(row.errors)
        print(
            f"{row.path:<46}{row.requests:>7}{rate:>16}{ms(row.p50_ms):>8}{ms(row.p99_ms):>8}{errors:>7}"
            f"{row.per_second / naive.per_second:>9.1f}{row.per_second / ceiling.per_second:>11.1%}"
        )


if __name__ == "__main__":
    typer.run(main)
