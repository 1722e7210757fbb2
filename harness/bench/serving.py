"""Serving: single-cutout requests from concurrent clients against a real ``bentoml serve`` (DESIGN.md §8).

Printed in one table, all measured in this run on this machine: the naive baseline (one ``model.predict``
per request, in-process), MLflow's pyfunc ``predict`` per request and the compiled predict step per
request (both in-process), the served champion under 16 concurrent clients (loopback, bounded count),
and the ceiling (batched predictions in-process). Ratios are to the naive baseline and to the ceiling.

The model is an untrained seed CNN (speed does not depend on the weights), saved as an MLflow model and
installed with the same code as ``astrospect deploy`` into a temporary BentoML store; the server is
``astrospect serve --bento <that bento>``. The in-process figures are taken before the server starts,
so the two never share the CPU.
"""

from __future__ import annotations

import asyncio
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

from astrospect.settings import CUTOUT_SIZE, N_BANDS, load_settings
from harness.serving_process import served, tree_cpu_seconds

LATENCY_TARGET_MS = 50.0
SPEEDUP_TARGET = 5.0


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


def timed_calls(call: Callable[[], object], n: int, path: str) -> Row:
    call()  # warm-up: tracing and first-call setup are not timed
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - start
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return Row(path, n, n / elapsed, float(p50), float(p99), 0)


def batched_ceiling(predict: Callable[[Any], object], images: np.ndarray, seconds: float, path: str) -> Row:
    predict(images)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(images)
        done += len(images)
    return Row(path, done, done / (time.perf_counter() - start))


async def load_test(url: str, bodies: list[bytes], clients: int, per_client: int, warmup: int) -> Row:
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
            body = bodies[(k * 7 + j) % len(bodies)]
            began = time.perf_counter()
            async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
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
        f"bentoml serve, {clients} concurrent clients",
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
    import json

    import keras
    import mlflow.pyfunc

    keras.utils.disable_interactive_logging()  # pyfunc's predict would print a progress bar per call

    from astrospect.model import load_model
    from astrospect.predict import predict_redshift
    from astrospect.serving.batching import MAX_BATCH_CUTOUTS

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
        naive = timed_calls(
            lambda: model.predict(one, verbose=0), naive_calls, "naive: model.predict per request"
        )
        via_pyfunc = timed_calls(
            lambda: pyfunc.predict(one), naive_calls, "MLflow pyfunc predict per request"
        )
        direct = timed_calls(
            lambda: predict_redshift(model, one), 10 * naive_calls, "compiled predict step per request"
        )
        ceiling = batched_ceiling(
            lambda x: predict_redshift(model, x),
            batch,
            ceiling_seconds,
            f"ceiling: batches of {MAX_BATCH_CUTOUTS}",
        )
        requests = synthetic_cutouts(64, seed=4)
        expected = predict_redshift(model, requests)
        bodies = [json.dumps({"images": requests[i : i + 1].tolist()}).encode() for i in range(len(requests))]
        env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
        env.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
        with served(env, home / "serve.log", "--bento", bento) as (url, server_pid):
            server_cpu, client_cpu = tree_cpu_seconds(server_pid), time.process_time()
            result = asyncio.run(load_test(f"{url}/predict", bodies, clients, per_client, warmup))
            server_cpu = tree_cpu_seconds(server_pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            check = urllib.request.Request(
                f"{url}/predict",
                data=json.dumps({"images": requests.tolist()}).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(check, timeout=60) as response:
                served_z = np.array(json.loads(response.read())["redshift"])
    load_after = os.getloadavg()[0]
    print_table([naive, via_pyfunc, direct, result, ceiling], naive, ceiling, result)
    requests_sent = result.requests + max(1, warmup // clients) * clients
    print(
        f"CPU per request: server {1000 * server_cpu / requests_sent:.2f} ms (all workers and threads), "
        f"load generator {1000 * client_cpu / requests_sent:.2f} ms"
    )
    print(f"model load: Keras .keras file {keras_load_s:.2f} s, MLflow pyfunc {pyfunc_load_s:.2f} s")
    print(f"served vs in-process predictions: max |dz| = {np.max(np.abs(served_z - expected)):.2e}")
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before, {load_after:.1f} after"
    )
    targets = [
        (
            f"throughput >= {SPEEDUP_TARGET:.0f}x naive",
            result.per_second / naive.per_second >= SPEEDUP_TARGET,
        ),
        (f"p99 < {LATENCY_TARGET_MS:.0f} ms", (result.p99_ms or 0.0) < LATENCY_TARGET_MS),
        ("0 errors", result.errors == 0),
    ]
    print("targets: " + ", ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in targets))
    if result.errors:
        raise typer.Exit(1)


def print_table(rows: list[Row], naive: Row, ceiling: Row, through_server: Row) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print(
        f"\nserving: seed CNN, single-cutout requests ({through_server.requests} timed through bentoml serve)"
    )
    header = (
        f"{'path':<42}{'calls':>7}{'throughput':>16}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'x naive':>9}{'of ceiling':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = f"{row.per_second:,.0f} {'cutouts' if row is ceiling else 'req'}/s"
        errors = "-" if row.errors is None else str(row.errors)
        print(
            f"{row.path:<42}{row.requests:>7}{rate:>16}{ms(row.p50_ms):>8}{ms(row.p99_ms):>8}{errors:>7}"
            f"{row.per_second / naive.per_second:>9.1f}{row.per_second / ceiling.per_second:>11.1%}"
        )


if __name__ == "__main__":
    typer.run(main)
