"""Serving: single-cutout requests from concurrent clients against a real ``bentoml serve`` (docs/explanation/architecture.md#serving).

Printed in one table, all measured in this run on this machine: the naive baseline (one ``model.predict``
per request, in-process), MLflow's pyfunc ``predict`` per request and the compiled predict step per
request (both in-process), the served champion under 16 concurrent clients (loopback, bounded count) on
the JSON path (``predict``) and the binary path (``predict_binary``), and the ceiling (batched predictions
in-process). Ratios are to the naive baseline and to the ceiling. Below the table, each served path's
server CPU per request (every worker and thread) divided by the compiled predict step's CPU per call:
unlike latency, that ratio does not depend on what else the machine is running.

Then the same load against a PDF champion (the PDF CNN over 280 bins, summaries computed per batch) on
``predict``, ``predict_binary``, ``predict_pdf`` and ``predict_pdf_binary``, each beside the point champion's
row of the same body measured in this run: its server CPU per request and its throughput as ratios (the
target: a PDF costs at most 1.5x a point prediction), and the bytes of each answer. Both servers run
throughout and every served path is measured once per round, in turn, for ``--rounds`` rounds; the served
rows are the medians of their rounds.

The models are untrained (speed does not depend on the weights; the PDF model's temperature is set low so
its PDFs are as peaked as a trained one's and its JSON as long), saved as MLflow models and installed with
the same code as ``astrospect deploy`` into a temporary BentoML store; the servers are ``astrospect serve
--bento <that bento>``, one after the other. The in-process figures are taken before any server starts, so
the two never share the CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

from astrospect import results
from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import CUTOUT_SIZE, N_BANDS, load_settings
from harness.serving_process import served as served_process
from harness.serving_process import tree_cpu_seconds

LATENCY_TARGET_MS = 50.0
SPEEDUP_TARGET = 5.0
BINARY_CPU_RATIO_TARGET = 2.0  # server CPU per binary request / compiled predict step CPU per call
PDF_COST_TARGET = 1.5  # a PDF champion's server CPU per request / the point champion's, same body
# Each PDF champion row and the point champion row it is judged against (the same request body).
PDF_PATHS = {
    "predict": "predict",
    "predict_binary": "predict_binary",
    "predict_pdf": "predict",
    "predict_pdf_binary": "predict_binary",
}
BENCH_TEMPERATURE = 0.05  # untrained logits span ~1; this makes PDFs ~10 bins wide, like a trained model's


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
    """One load test through the server: its row, the CPU it cost per request and its answer's size."""

    row: Row
    server_cpu_ms: float  # every worker and thread of ``bentoml serve``
    client_cpu_ms: float  # the load generator
    answer_bytes: int  # of one single-cutout answer


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
    url: str, requests: list[Request], clients: int, per_client: int, warmup: int, label: str
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
        label,
        len(statuses),
        len(statuses) / elapsed,
        p50,
        p99,
        errors,
    )


def install_bench_model(home: Path, pdf: bool = False) -> tuple[str, Path]:
    """An untrained seed CNN (or PDF CNN) as an MLflow model, installed like ``astrospect deploy`` does;
    (bento, keras file)."""
    import mlflow.tensorflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from astrospect.deploy import install, use_bentoml_home
    from astrospect.models.calibration import Calibration, apply_calibration
    from astrospect.models.cnn import build_pdf_cnn, build_seed_cnn, fit_input_scaling
    from astrospect.pdf.bins import DEFAULT_BINS
    from astrospect.serving.card import keras_file
    from astrospect.tracking.registry import Champion

    os.environ["BENTOML_HOME"] = str(home / "bentoml")  # a store of its own, whatever the shell points at
    use_bentoml_home(load_settings().replace(home=home))  # before BentoML opens any store
    scaling = fit_input_scaling(synthetic_cutouts(256, seed=1))
    if pdf:
        model = build_pdf_cnn(scaling, DEFAULT_BINS)
        apply_calibration(model, Calibration(BENCH_TEMPERATURE, 0.0))
        output = TensorSpec(np.dtype(np.float32), (-1, DEFAULT_BINS.n), "redshift_pdf")
    else:
        model = build_seed_cnn(scaling, 0.0, 0.6)
        output = TensorSpec(np.dtype(np.float32), (-1,), "redshift")
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), "cutouts")]),
        outputs=Schema([output]),
    )
    saved = home / ("mlflow-model-pdf" if pdf else "mlflow-model")
    mlflow.tensorflow.save_model(
        model, str(saved), signature=signature, pip_requirements=["tensorflow", "keras"]
    )
    champion = Champion(
        "astrospect-photoz",
        "2" if pdf else "1",
        "benchmark-pdf" if pdf else "benchmark",
        str(saved),
        "synthetic",
    )
    deployment = install(champion)
    return deployment.bento, keras_file(saved)


@dataclass(frozen=True)
class LoadTest:
    """One path of one running server, and the bodies its clients send in turn."""

    label: str  # how its row is named
    url: str
    server_pid: int
    path: str
    requests: list[Request]


def measure(test: LoadTest, clients: int, per_client: int, warmup: int) -> Served:
    server_cpu, client_cpu = tree_cpu_seconds(test.server_pid), time.process_time()
    row = asyncio.run(
        load_test(f"{test.url}/{test.path}", test.requests, clients, per_client, warmup, test.label)
    )
    server_cpu = tree_cpu_seconds(test.server_pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    sent = row.requests + max(1, warmup // clients) * clients
    answer = _answer(f"{test.url}/{test.path}", *test.requests[0])
    return Served(row, 1000 * server_cpu / sent, 1000 * client_cpu / sent, len(answer))


def round_robin(
    tests: list[LoadTest], rounds: int, clients: int, per_client: int, warmup: int
) -> list[Served]:
    """Every test once per round, in turn, ``rounds`` times; per test the median of its rounds.

    Other sessions' jobs come and go on this machine: one pass per path measured ratios up to 1.5x apart
    between passes of the same server and path, so the paths being compared take turns and are compared by
    their medians.
    """
    results: list[list[Served]] = [[] for _ in tests]
    for turn in range(rounds):
        for test, found in zip(tests, results, strict=True):
            found.append(measure(test, clients, per_client, warmup))
        print(f"round {turn + 1}/{rounds} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    return [_median(found) for found in results]


def _median(results: list[Served]) -> Served:
    def mid(values: list[float]) -> float:
        return float(np.median(values))

    rows = [result.row for result in results]
    row = Row(
        rows[0].path,
        sum(r.requests for r in rows),
        mid([r.per_second for r in rows]),
        mid([r.p50_ms or 0.0 for r in rows]),
        mid([r.p99_ms or 0.0 for r in rows]),
        sum(r.errors or 0 for r in rows),
    )
    return Served(
        row,
        mid([r.server_cpu_ms for r in results]),
        mid([r.client_cpu_ms for r in results]),
        results[0].answer_bytes,
    )


def main(
    clients: int = typer.Option(16, help="Concurrent closed-loop clients."),
    per_client: int = typer.Option(100, help="Timed single-cutout requests per client, per round."),
    rounds: int = typer.Option(
        3, help="Rounds: every served path measured once per round, medians reported."
    ),
    warmup: int = typer.Option(128, help="Untimed requests before the timed ones."),
    naive_calls: int = typer.Option(40, help="model.predict calls for the naive baseline."),
    ceiling_seconds: float = typer.Option(3.0, help="Seconds of batched prediction for the ceiling."),
) -> None:
    import keras
    import mlflow.pyfunc
    import tensorflow as tf

    from astrospect.serving.batching import MAX_BATCH_CUTOUTS

    # The in-process rows run TensorFlow with the threads one server worker has, so "the compiled predict
    # step" is the step each worker runs, and its CPU per call the fair denominator for the server's.
    settings = load_settings()
    threads = settings.serving_intra_op_threads
    tf.config.threading.set_intra_op_parallelism_threads(settings.serving_intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(settings.serving_inter_op_threads)

    keras.utils.disable_interactive_logging()  # pyfunc's predict would print a progress bar per call

    from astrospect.models.cnn import load_model, pdf_bins
    from astrospect.models.predict import predict_pdf, predict_redshift
    from astrospect.serving.pdfs import ServedPdfs, pdf_rows

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        bento, keras_path = install_bench_model(home)
        pdf_bento, pdf_keras_path = install_bench_model(home, pdf=True)
        began = time.perf_counter()
        model = load_model(keras_path)
        keras_load_s = time.perf_counter() - began
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # our own model's saved custom layer
        began = time.perf_counter()
        pyfunc = mlflow.pyfunc.load_model(str(home / "mlflow-model"))
        pyfunc_load_s = time.perf_counter() - began
        pdf_model = load_model(pdf_keras_path)
        bins = pdf_bins(pdf_model)
        assert bins is not None
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
        direct_pdf, pdf_step_cpu_ms = timed_calls(
            lambda: pdf_rows(predict_pdf(pdf_model, one, None, bins)),
            10 * naive_calls,
            "PDF model: predict step + summary per request",
        )
        ceiling = batched_ceiling(
            lambda x: predict_redshift(model, x),
            batch,
            ceiling_seconds,
            f"ceiling: batches of {MAX_BATCH_CUTOUTS}",
        )
        cutouts = synthetic_cutouts(64, seed=4)
        expected = predict_redshift(model, cutouts)
        expected_pdfs = ServedPdfs.from_rows(pdf_rows(predict_pdf(pdf_model, cutouts, None, bins)), bins)
        encoding = answer_encoding(expected_pdfs, bins)
        json_requests = [
            (
                {"content-type": "application/json"},
                json.dumps(
                    {"images": cutouts[i : i + 1].reshape(1, -1).tolist(), "layout": "channels-last"}
                ).encode(),
            )
            for i in range(len(cutouts))
        ]
        binary_requests = [
            (
                {
                    "content-type": "application/octet-stream",
                    SHAPE_HEADER: f"1,{CUTOUT_SIZE},{CUTOUT_SIZE},{N_BANDS}",
                },
                cutouts[i : i + 1].astype("<f4").tobytes(),
            )
            for i in range(len(cutouts))
        ]
        body_of = {"predict": json_requests, "predict_binary": binary_requests}
        whole = {
            "predict": (
                {"content-type": "application/json"},
                json.dumps(
                    {"images": cutouts.reshape(len(cutouts), -1).tolist(), "layout": "channels-last"}
                ).encode(),
            ),
            "predict_binary": (
                {"content-type": "application/octet-stream", SHAPE_HEADER: ",".join(map(str, cutouts.shape))},
                cutouts.astype("<f4").tobytes(),
            ),
        }
        env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
        env.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
        checks: list[str] = []
        with (
            served_process(env, home / "serve.log", "--bento", bento) as (url, server_pid),
            served_process(env, home / "serve-pdf.log", "--bento", pdf_bento) as (pdf_url, pdf_pid),
        ):
            # Both servers run throughout; only the one under test gets requests (and has its CPU counted).
            tests = [
                LoadTest(f"bentoml serve, {path}, {clients} clients", url, server_pid, path, body_of[path])
                for path in body_of
            ] + [
                LoadTest(
                    f"bentoml serve, PDF champion, {path}, {clients} clients",
                    pdf_url,
                    pdf_pid,
                    path,
                    body_of[point],
                )
                for path, point in PDF_PATHS.items()
            ]
            measured = round_robin(tests, rounds, clients, per_client, warmup)
            served = {
                test.path: result for test, result in zip(tests, measured, strict=True) if test.url == url
            }
            served_pdf = {
                test.path: result for test, result in zip(tests, measured, strict=True) if test.url == pdf_url
            }
            for path, (headers, body) in whole.items():
                redshift = np.array(json.loads(_answer(f"{url}/{path}", headers, body))["redshift"])
                checks.append(
                    f"served ({path}) vs in-process predictions: max |dz| = {np.max(np.abs(redshift - expected)):.2e}"
                )
            for path, point in PDF_PATHS.items():
                answer = json.loads(_answer(f"{pdf_url}/{path}", *whole[point]))
                dz = np.max(np.abs(np.array(answer["redshift"]) - expected_pdfs.redshift))
                line = f"served PDF champion ({path}) vs in-process: max |dz| = {dz:.2e}"
                if "probabilities" in answer:
                    dp = np.max(np.abs(np.array(answer["probabilities"]) - expected_pdfs.pdfs.probabilities))
                    line += f", max |dp| = {dp:.2e}"
                checks.append(line)
    load_after = os.getloadavg()[0]
    rows = [result.row for result in served.values()]
    pdf_answer_rows = [result.row for result in served_pdf.values()]
    print_table([naive, via_pyfunc, direct, direct_pdf, *rows, *pdf_answer_rows, ceiling], naive, ceiling)
    print(
        f"compiled predict step: {step_cpu_ms:.2f} ms CPU per call (1 cutout, {threads} TensorFlow thread(s) as in each worker);"
        f" PDF model with its summary: {pdf_step_cpu_ms:.2f} ms"
    )
    for path, result in served.items():
        print(
            f"CPU per request, {path}: server {result.server_cpu_ms:.2f} ms (all workers and threads),"
            f" {result.server_cpu_ms / step_cpu_ms:.2f}x the predict step; load generator {result.client_cpu_ms:.2f} ms"
        )
    print(
        f"\nPDF champion ({bins.n} bins) against the point champion, same request body, this run"
        f" (medians of {rounds} rounds):"
    )
    header = f"{'PDF champion path':<22}{'vs point':<17}{'server CPU/req':>16}{'CPU ratio':>11}{'throughput ratio':>18}{'answer bytes':>14}"
    print(header)
    print("-" * len(header))
    cost_ratios = {}
    for path, point in PDF_PATHS.items():
        pdf_result, point_result = served_pdf[path], served[point]
        cost_ratios[path] = pdf_result.server_cpu_ms / point_result.server_cpu_ms
        print(
            f"{path:<22}{point:<17}{pdf_result.server_cpu_ms:>13.2f} ms{cost_ratios[path]:>10.2f}x"
            f"{pdf_result.row.per_second / point_result.row.per_second:>17.2f}x"
            f"{pdf_result.answer_bytes:>8} ({point_result.answer_bytes})"
        )
    print(
        f"request bodies, 1 cutout: JSON {len(json_requests[0][1])} bytes, binary {len(binary_requests[0][1])} bytes"
    )
    for line in encoding:
        print(line)
    print(f"model load: Keras .keras file {keras_load_s:.2f} s, MLflow pyfunc {pyfunc_load_s:.2f} s")
    for line in checks:
        print(line)
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before, {load_after:.1f} after"
        " (other jobs share it: latency depends on them, the CPU ratios do not)"
    )
    binary, as_json = served["predict_binary"], served["predict"]
    every = [*served.values(), *served_pdf.values()]
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
        (
            f"a PDF costs <= {PDF_COST_TARGET}x a point prediction (server CPU, every path)",
            max(cost_ratios.values()) <= PDF_COST_TARGET,
        ),
        ("0 errors", all(result.row.errors == 0 for result in every)),
    ]
    print("targets: " + ", ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in targets))
    written = record_results(
        [naive, via_pyfunc, direct, direct_pdf, *rows, *pdf_answer_rows, ceiling],
        naive,
        ceiling,
        served,
        served_pdf,
        step_cpu_ms,
        pdf_step_cpu_ms,
        clients,
        load_before,
    )
    print(f"results: {written}")
    if any(result.row.errors for result in every):
        raise typer.Exit(1)


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (so their shortest repr is at most that long)."""
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    scale = 10.0 ** (digits - 1 - np.where(np.isfinite(exponent), exponent, 0))
    return np.asarray(np.round(values * scale) / scale)


def answer_encoding(pdfs: Any, bins: Any, repeats: int = 2000) -> list[str]:
    """What a single-cutout predict_pdf answer costs to build and encode as sent, and with its probabilities
    rounded to 7 significant digits (float32's precision) to shorten the JSON; in-process."""
    from astrospect.serving.schemas import PdfPrediction

    identity = {"model_name": "astrospect-photoz", "model_version": "2", "run_id": "benchmark-pdf"}

    def encode(convert: Callable[[np.ndarray], list[Any]]) -> bytes:
        return (
            PdfPrediction(
                **identity,
                bin_edges=list(bins.edges),
                probabilities=convert(pdfs.probabilities[:1]),
                redshift=pdfs.redshift[:1].tolist(),
                pdf_summary=pdfs.summaries()[:1],
            )
            .model_dump_json()
            .encode()
        )

    lines = []
    conversions: dict[str, Callable[[np.ndarray], list[Any]]] = {
        "as served (full float64 repr)": lambda p: list(p.tolist()),
        "rounded to 7 significant digits": lambda p: list(significant(p, 7).tolist()),
    }
    for label, convert in conversions.items():
        size = len(encode(convert))
        began = time.process_time()
        for _ in range(repeats):
            encode(convert)
        micros = 1e6 * (time.process_time() - began) / repeats
        lines.append(
            f"predict_pdf answer, 1 cutout, {label}: {size} bytes, {micros:.0f} us CPU to build and encode"
        )
    return lines


def _answer(url: str, headers: dict[str, str], body: bytes) -> bytes:
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, headers=headers), timeout=60
    ) as response:
        return bytes(response.read())


def record_results(
    rows: list[Row],
    naive: Row,
    ceiling: Row,
    served: dict[str, Served],
    served_pdf: dict[str, Served],
    step_cpu_ms: float,
    pdf_step_cpu_ms: float,
    clients: int,
    load_before: float,
) -> Path:
    """docs/results/bench-serving.json: the table above, the PDF cost table and the headline figures."""
    binary, as_json = served["predict_binary"], served["predict"]
    paths: list[list[results.Scalar]] = [
        [
            row.path,
            row.requests,
            f"{row.per_second:,.0f} {'cutouts' if row is ceiling else 'req'}/s",
            None if row.p50_ms is None else round(row.p50_ms, 1),
            None if row.p99_ms is None else round(row.p99_ms, 1),
            round(row.per_second / naive.per_second, 1),
        ]
        for row in rows
    ]
    pdf_cost: list[list[results.Scalar]] = [
        [
            path,
            point,
            round(served_pdf[path].server_cpu_ms, 2),
            round(served_pdf[path].server_cpu_ms / served[point].server_cpu_ms, 2),
            round(served_pdf[path].row.per_second / served[point].row.per_second, 2),
            f"{served_pdf[path].answer_bytes} ({served[point].answer_bytes})",
        ]
        for path, point in PDF_PATHS.items()
    ]
    return results.record(
        "bench-serving-paths",
        title=f"Serving: single-cutout requests, {clients} clients",
        figures={
            "json_requests_per_s": round(as_json.row.per_second),
            "json_p99_ms": round(as_json.row.p99_ms or 0.0, 1),
            "binary_requests_per_s": round(binary.row.per_second),
            "binary_p99_ms": round(binary.row.p99_ms or 0.0, 1),
            "predict_step_cpu_ms": round(step_cpu_ms, 2),
            "pdf_step_cpu_ms": round(pdf_step_cpu_ms, 2),
            "json_cpu_over_step": round(as_json.server_cpu_ms / step_cpu_ms, 2),
            "binary_cpu_over_step": round(binary.server_cpu_ms / step_cpu_ms, 2),
            "clients": clients,
        },
        tables={
            "paths": results.table(["path", "calls", "throughput", "p50 ms", "p99 ms", "x naive"], paths),
            "pdf_cost": results.table(
                [
                    "PDF champion path",
                    "vs point",
                    "server CPU/req ms",
                    "CPU ratio",
                    "throughput ratio",
                    "answer bytes (point's)",
                ],
                pdf_cost,
            ),
        },
        load_before=round(load_before, 2),
    )


def print_table(rows: list[Row], naive: Row, ceiling: Row) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print("\nserving: single-cutout requests (the bentoml serve rows: per path, medians of the rounds)")
    header = (
        f"{'path':<62}{'calls':>7}{'throughput':>16}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'x naive':>9}{'of ceiling':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = f"{row.per_second:,.0f} {'cutouts' if row is ceiling else 'req'}/s"
        errors = "-" if row.errors is None else str(row.errors)
        print(
            f"{row.path:<62}{row.requests:>7}{rate:>16}{ms(row.p50_ms):>8}{ms(row.p99_ms):>8}{errors:>7}"
            f"{row.per_second / naive.per_second:>9.1f}{row.per_second / ceiling.per_second:>11.1%}"
        )


if __name__ == "__main__":
    typer.run(main)
