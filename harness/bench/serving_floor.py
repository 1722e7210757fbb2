"""Serving against BentoML's floor: the champion beside an empty BentoML endpoint, in one run, loaded by wrk.

``make bench-serving``. Two servers run side by side on this machine: ``astrospect serve`` with a PDF
champion (an untrained PDF CNN over 280 bins, installed as ``astrospect deploy`` does; speed does not depend
on the weights) and :mod:`harness.bench.empty_service`, the same routes, workers and input kinds answering a
constant. Per route, each server gets the same single-cutout body from wrk (a C load generator, so no Python
client shares the interpreter's costs): a warm-up, then a timed run; the ratio of their warm req/s says how
close the service comes to what BentoML allows here. Server CPU per request (every worker and thread, from
/proc) is measured too: unlike req/s it hardly depends on what else the machine runs. The service's
``astrospect_batch_cutouts`` histogram gives the mean batch each route reached.

The figures go to ``docs/results/bench-serving.json`` (with the machine, its load average and the command)
and are printed; the target is ``predict_binary`` at >= 0.7 of the empty endpoint's req/s.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from astrospect import results
from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import load_settings
from harness.serving_process import served, served_command, tree_cpu_seconds

ROUTES = ("predict", "predict_binary", "predict_pdf", "predict_file")
TARGET_ROUTE, TARGET_RATIO = "predict_binary", 0.7
RESULTS_NAME = "bench-serving"
ROUTE_COLUMNS = [
    "route",
    "empty req/s",
    "service req/s",
    "req/s ratio",
    "service p50 ms",
    "service p99 ms",
    "empty CPU ms/req",
    "service CPU ms/req",
    "CPU ratio",
    "mean batch",
]
BOUNDARY = "astrospect-bench-boundary"
EMPTY_SERVICE = "harness.bench.empty_service:EmptyEndpoint"


@dataclass(frozen=True)
class Body:
    """One route's request: its headers and bytes."""

    headers: dict[str, str]
    data: bytes


def route_bodies(cutout: np.ndarray) -> dict[str, Body]:
    """The single-cutout body of each route, the same for both servers. ``cutout``: (1, 32, 32, 5)."""
    as_json = json.dumps({"images": cutout.reshape(1, -1).tolist(), "layout": "channels-last"}).encode()
    npy = io.BytesIO()
    np.save(npy, cutout.astype(np.float32))
    multipart = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="cutouts.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + npy.getvalue()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    json_headers = {"Content-Type": "application/json"}
    return {
        "predict": Body(json_headers, as_json),
        "predict_binary": Body(
            {
                "Content-Type": "application/octet-stream",
                SHAPE_HEADER: ",".join(map(str, cutout.shape)),
            },
            cutout.astype("<f4").tobytes(),
        ),
        "predict_pdf": Body(json_headers, as_json),
        "predict_file": Body({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, multipart),
    }


def wrk_script(body: Body, folder: Path, name: str) -> Path:
    """A wrk Lua script that POSTs ``body`` (read from a file, so any bytes go through)."""
    data = folder / f"{name}.body"
    data.write_bytes(body.data)
    lines = [
        'wrk.method = "POST"',
        f'local f = assert(io.open("{data}", "rb"))',
        'wrk.body = f:read("*a")',
        "f:close()",
    ]
    lines += [f'wrk.headers["{key}"] = "{value}"' for key, value in body.headers.items()]
    script = folder / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


@dataclass(frozen=True)
class WrkRun:
    requests: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkRun:
    """wrk's ``--latency`` report as numbers; a report without its totals is an error naming what is missing."""
    found = {
        "requests": re.search(r"(\d+) requests in", output),
        "req_per_s": re.search(r"Requests/sec:\s+([\d.]+)", output),
        "p50": re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE),
        "p99": re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE),
    }
    missing = [key for key, match in found.items() if match is None]
    if missing:
        raise RuntimeError(f"wrk output: expected {', '.join(missing)}, got:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkRun(
        requests=int(found["requests"].group(1)),  # type: ignore[union-attr]
        req_per_s=float(found["req_per_s"].group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(found["p50"].group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(found["p99"].group(1)),  # type: ignore[union-attr]
        non_2xx=0 if non_2xx is None else int(non_2xx.group(1)),
        socket_errors=0 if sockets is None else sum(int(v) for v in sockets.groups()),
    )


def wrk_command(url: str, script: Path, seconds: float, threads: int, connections: int) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def run_wrk(url: str, script: Path, seconds: float, threads: int, connections: int) -> WrkRun:
    done = subprocess.run(
        wrk_command(url, script, seconds, threads, connections), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}) on {url}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def check_answer(url: str, body: Body) -> bytes:
    """One request before the load: a 200 with a JSON answer, or an error saying what came back."""
    request = urllib.request.Request(url, data=body.data, headers=body.headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = bytes(response.read())
    json.loads(answer)
    return answer


def batch_counts(url: str) -> tuple[float, float]:
    """(model calls, cutouts) so far, from the service's ``astrospect_batch_cutouts`` histogram."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    total = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        match = re.match(r"astrospect_batch_cutouts_(count|sum)(?:\{[^}]*\})? (\S+)", line)
        if match:
            total[match.group(1)] += float(match.group(2))
    return total["count"], total["sum"]


@dataclass(frozen=True)
class Measured:
    wrk: WrkRun
    server_cpu_ms_per_request: float
    mean_batch_cutouts: float | None = None


def measure(
    url: str,
    pid: int,
    script: Path,
    seconds: float,
    warmup: float,
    threads: int,
    connections: int,
    batches: bool,
) -> Measured:
    run_wrk(url, script, warmup, threads, connections)
    before_batches = batch_counts(url.rsplit("/", 1)[0]) if batches else (0.0, 0.0)
    cpu = tree_cpu_seconds(pid)
    run = run_wrk(url, script, seconds, threads, connections)
    cpu = tree_cpu_seconds(pid) - cpu
    mean_batch = None
    if batches:
        calls, cutouts = (
            b - a for a, b in zip(before_batches, batch_counts(url.rsplit("/", 1)[0]), strict=True)
        )
        mean_batch = cutouts / calls if calls else None
    return Measured(run, 1000 * cpu / max(run.requests, 1), mean_batch)


@contextmanager
def servers(home: Path, bento: str) -> Iterator[dict[str, tuple[str, int]]]:
    """The service and the empty endpoint, both ready; name -> (URL, pid)."""
    env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
    env.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", BENTOML_DO_NOT_TRACK="true")
    empty_env = {**env, "BENTOML_HOME": str(home / "bentoml-empty")}
    empty = [sys.executable, "-m", "bentoml", "serve", EMPTY_SERVICE, "--host", "127.0.0.1"]
    with ExitStack() as stack:
        started = {
            "service": stack.enter_context(served(env, home / "serve.log", "--bento", bento)),
            "empty": stack.enter_context(served_command(empty_env, home / "empty.log", empty)),
        }
        yield started


def main(
    seconds: float = typer.Option(10.0, help="Timed wrk seconds per route and server."),
    warmup: float = typer.Option(3.0, help="Untimed wrk seconds before each timed run."),
    threads: int = typer.Option(2, help="wrk threads."),
    connections: int = typer.Option(16, help="wrk connections (concurrent clients)."),
    name: str = typer.Option(
        RESULTS_NAME, help="The by_route file's name: docs/by_route/<name>.json (astrospect.by_route)."
    ),
) -> None:
    from harness.bench.serving import install_bench_model, synthetic_cutouts

    load_before = os.getloadavg()
    began = time.perf_counter()
    bodies = route_bodies(synthetic_cutouts(1, seed=4))
    by_route: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        bento, _ = install_bench_model(home, pdf=True)
        with servers(home, bento) as started:
            for route in ROUTES:
                script = wrk_script(bodies[route], home, route)
                row: dict[str, Any] = {}
                for side in ("empty", "service"):
                    url, pid = started[side]
                    check_answer(f"{url}/{route}", bodies[route])
                    row[side] = measure(
                        f"{url}/{route}",
                        pid,
                        script,
                        seconds,
                        warmup,
                        threads,
                        connections,
                        side == "service",
                    )
                row["ratio"] = row["service"].wrk.req_per_s / row["empty"].wrk.req_per_s
                by_route[route] = row
                print(
                    f"{route:<16} empty {row['empty'].wrk.req_per_s:>8,.0f} req/s  service"
                    f" {row['service'].wrk.req_per_s:>8,.0f} req/s  ratio {row['ratio']:.2f}"
                    f"  (load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    load_after = os.getloadavg()
    report(by_route, threads, connections, seconds)
    document = {
        "wrk": {"threads": threads, "connections": connections, "seconds": seconds, "warmup_seconds": warmup},
        "workers": load_settings().serving_workers,
        "bench_seconds": round(time.perf_counter() - began, 1),
        "routes": {
            route: {
                "empty": {
                    **asdict(row["empty"].wrk),
                    "server_cpu_ms_per_request": row["empty"].server_cpu_ms_per_request,
                },
                "service": {
                    **asdict(row["service"].wrk),
                    "server_cpu_ms_per_request": row["service"].server_cpu_ms_per_request,
                    "mean_batch_cutouts": row["service"].mean_batch_cutouts,
                },
                "req_per_s_ratio": row["ratio"],
                "cpu_per_request_ratio": row["service"].server_cpu_ms_per_request
                / row["empty"].server_cpu_ms_per_request,
            }
            for route, row in by_route.items()
        },
    }
    out = record_document(name, document, round(load_before[0], 2))
    print(f"written {out}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    errors = {
        f"{route} {side}": asdict(row[side].wrk)
        for route, row in by_route.items()
        for side in ("empty", "service")
        if row[side].wrk.non_2xx or row[side].wrk.socket_errors
    }
    if errors:
        print(f"errors under load: {errors}")
        raise typer.Exit(1)


def record_document(
    name: str, document: dict[str, Any], load_before: float | None, provenance: str | None = None
) -> Path:
    """One run's figures as a results file (astrospect.results): the ratio per route as figures, and a
    table of both servers' req/s, latency, server CPU per request and the service's mean batch."""
    routes = document["routes"]
    rows: list[list[results.Scalar]] = [
        [
            route,
            round(row["empty"]["req_per_s"]),
            round(row["service"]["req_per_s"]),
            round(row["req_per_s_ratio"], 2),
            round(row["service"]["p50_ms"], 1),
            round(row["service"]["p99_ms"], 1),
            round(row["empty"]["server_cpu_ms_per_request"], 2),
            round(row["service"]["server_cpu_ms_per_request"], 2),
            round(row["cpu_per_request_ratio"], 2),
            round(row["service"]["mean_batch_cutouts"], 1)
            if row["service"]["mean_batch_cutouts"] is not None
            else None,
        ]
        for route, row in routes.items()
    ]
    wrk = document["wrk"]
    return results.record(
        name,
        title="The service beside an empty BentoML endpoint, wrk on each route",
        figures={
            **{f"{route}_ratio": round(row["req_per_s_ratio"], 2) for route, row in routes.items()},
            "target_route": TARGET_ROUTE,
            "target_ratio": TARGET_RATIO,
            "wrk_threads": wrk["threads"],
            "wrk_connections": wrk["connections"],
            "wrk_seconds": wrk["seconds"],
            "workers": document["workers"],
            "bench_seconds": document["bench_seconds"],
        },
        tables={"routes": results.table(ROUTE_COLUMNS, rows)},
        load_before=load_before,
        command="make bench-serving",
        provenance=provenance,
    )


def report(by_route: dict[str, dict[str, Any]], threads: int, connections: int, seconds: float) -> None:
    print(
        f"\nwrk -t{threads} -c{connections}, {seconds:g} s per route and server, single-cutout bodies, warm"
    )
    header = (
        f"{'route':<16}{'empty req/s':>12}{'service req/s':>15}{'ratio':>7}{'p50 ms':>14}{'p99 ms':>16}"
        f"{'CPU ms/req':>16}{'batch':>7}"
    )
    print(header)
    print("-" * len(header))
    for route, row in by_route.items():
        empty, service = row["empty"], row["service"]
        batch = "-" if service.mean_batch_cutouts is None else f"{service.mean_batch_cutouts:.1f}"
        print(
            f"{route:<16}{empty.wrk.req_per_s:>12,.0f}{service.wrk.req_per_s:>15,.0f}{row['ratio']:>7.2f}"
            f"{empty.wrk.p50_ms:>7.1f}/{service.wrk.p50_ms:<6.1f}{empty.wrk.p99_ms:>8.1f}/{service.wrk.p99_ms:<7.1f}"
            f"{empty.server_cpu_ms_per_request:>7.2f}/{service.server_cpu_ms_per_request:<8.2f}{batch:>7}"
        )
    print("(p50, p99 and CPU: empty/service)")
    target = by_route[TARGET_ROUTE]["ratio"]
    print(
        f"target: {TARGET_ROUTE} >= {TARGET_RATIO} of the empty endpoint: {'met' if target >= TARGET_RATIO else 'MISSED'} ({target:.2f})"
    )


if __name__ == "__main__":
    typer.run(main)
