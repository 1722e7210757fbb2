"""Serving: p99 and throughput against the number of clients, for several worker and thread layouts at once.

Every layout is a real ``astrospect serve`` of the same untrained seed CNN (``harness.bench.serving``'s
bench model), all running throughout; for each client count (closed-loop clients, single-cutout binary
requests, ``predict_binary``: the path the 50 ms target is set on) every layout is measured in turn, so the
layouts are compared under the same load from other jobs, and the whole sweep is repeated ``--rounds`` times
(medians kept). Per point: requests/s, p50 and p99, the server's CPU per request (every process of its
tree: unlike latency, that does not depend on what else the machine runs) and, for a layout of several
workers, how the requests' CPU split between them (a worker that holds more of the clients' keep-alive
connections is the queue the tail waits in). The load average is printed with every point.

``make bench-serving-curve``; layouts as ``workers x intra-op x inter-op`` (``--layouts 2x1x1,1x2x1``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from astrospect import results
from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import CUTOUT_SIZE, N_BANDS, load_settings
from harness.bench.serving import LATENCY_TARGET_MS, install_bench_model, load_test, synthetic_cutouts
from harness.serving_process import descendants, served


@dataclass(frozen=True)
class Layout:
    workers: int
    intra: int
    inter: int

    @property
    def label(self) -> str:
        return f"{self.workers} worker(s) x {self.intra} intra-op x {self.inter} inter-op"

    def env(self) -> dict[str, str]:
        return {
            "ASTROSPECT_SERVING_WORKERS": str(self.workers),
            "ASTROSPECT_SERVING_INTRA_OP_THREADS": str(self.intra),
            "ASTROSPECT_SERVING_INTER_OP_THREADS": str(self.inter),
        }


@dataclass(frozen=True)
class Point:
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float  # per request, every process of the server
    busiest_share: float  # of the server's CPU, the busiest process's (1.0 for one worker)
    load: float  # 1-minute load average after the point


def parse_layouts(text: str) -> list[Layout]:
    layouts = []
    for item in text.split(","):
        workers, intra, inter = (int(part) for part in item.strip().split("x"))
        layouts.append(Layout(workers, intra, inter))
    return layouts


def measure(
    url: str, pid: int, requests: list[tuple[dict[str, str], bytes]], clients: int, total: int
) -> Point:
    per_client = max(1, total // clients)
    before = {member: _own_cpu(member) for member in [pid, *descendants(pid)]}
    row = asyncio.run(load_test(f"{url}/predict_binary", requests, clients, per_client, 4 * clients, "curve"))
    after = {member: _own_cpu(member) for member in [pid, *descendants(pid)]}
    used = {member: after[member] - before.get(member, 0.0) for member in after}
    total_cpu = sum(used.values())
    sent = row.requests + 4 * clients
    return Point(
        row.per_second,
        float(row.p50_ms or 0.0),
        float(row.p99_ms or 0.0),
        int(row.errors or 0),
        1000 * total_cpu / sent,
        max(used.values()) / total_cpu if total_cpu > 0 else 1.0,
        os.getloadavg()[0],
    )


def _own_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` alone (user + system)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(
    layouts: str = typer.Option(
        "2x1x1,1x2x1,1x1x1",
        help="workers x intra-op x inter-op threads, comma-separated; the first is the baseline.",
    ),
    clients: str = typer.Option("1,2,4,8,16,32", help="Client counts, comma-separated."),
    requests_per_point: int = typer.Option(800, help="Timed requests per point (at least one per client)."),
    rounds: int = typer.Option(2, help="Sweeps over every point; medians reported."),
) -> None:
    chosen = parse_layouts(layouts)
    counts = [int(c) for c in clients.split(",")]
    load_before = os.getloadavg()
    defaults = load_settings()
    print(
        f"settings' defaults on this machine ({os.cpu_count()} CPUs): {defaults.serving_workers} worker(s) x "
        f"{defaults.serving_intra_op_threads} intra-op x {defaults.serving_inter_op_threads} inter-op",
        flush=True,
    )
    cutouts = synthetic_cutouts(64, seed=4)
    requests = [
        (
            {
                "content-type": "application/octet-stream",
                SHAPE_HEADER: f"1,{CUTOUT_SIZE},{CUTOUT_SIZE},{N_BANDS}",
            },
            cutouts[i : i + 1].astype("<f4").tobytes(),
        )
        for i in range(len(cutouts))
    ]
    found: dict[tuple[int, int], list[Point]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-curve-") as tmp, ExitStack() as stack:
        home = Path(tmp)
        bento, _ = install_bench_model(home)
        base = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
        base.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
        servers = []
        for k, layout in enumerate(chosen):
            env = {**base, **layout.env()}
            servers.append(stack.enter_context(served(env, home / f"serve-{k}.log", "--bento", bento)))
            print(f"started {layout.label}", flush=True)
        for turn in range(rounds):
            for count in counts:
                for k, (url, pid) in enumerate(servers):
                    point = measure(url, pid, requests, count, max(requests_per_point, count))
                    found.setdefault((k, count), []).append(point)
                    print(
                        f"round {turn + 1}, {count:>2} clients, {chosen[k].label}: {point.per_second:.0f} req/s,"
                        f" p99 {point.p99_ms:.1f} ms, load {point.load:.1f}",
                        flush=True,
                    )
    load_after = os.getloadavg()
    print(f"\np99 and throughput against clients, predict_binary, medians of {rounds} round(s)")
    header = (
        f"{'layout':<42}{'clients':>8}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU/req ms':>11}"
        f"{'busiest':>9}{'load':>6}{'req/s vs base':>15}{'p99 vs base':>13}"
    )
    print(header)
    print("-" * len(header))
    medians = {key: _median(points) for key, points in found.items()}
    for k, layout in enumerate(chosen):
        for count in counts:
            point, base_point = medians[(k, count)], medians[(0, count)]
            print(
                f"{layout.label:<42}{count:>8}{point.per_second:>8.0f}{point.p50_ms:>8.1f}{point.p99_ms:>8.1f}"
                f"{point.server_cpu_ms:>11.2f}{point.busiest_share:>9.0%}{point.load:>6.1f}"
                f"{point.per_second / base_point.per_second:>14.2f}x{point.p99_ms / base_point.p99_ms:>12.2f}x"
            )
    print(f"\nwhere p99 crosses {LATENCY_TARGET_MS:.0f} ms (the first client count at or above it):")
    for k, layout in enumerate(chosen):
        over = [count for count in counts if medians[(k, count)].p99_ms >= LATENCY_TARGET_MS]
        print(f"  {layout.label}: {over[0] if over else 'not within ' + str(counts[-1])} clients")
    errors = sum(point.errors for points in found.values() for point in points)
    print(
        f"errors: {errors}; load average (1, 5, 15 min): before {' '.join(f'{v:.1f}' for v in load_before)},"
        f" after {' '.join(f'{v:.1f}' for v in load_after)} ({os.cpu_count()} CPUs, shared with other jobs)"
    )
    curve: list[list[results.Scalar]] = []
    for k, layout in enumerate(chosen):
        curve.append([layout.label, "req/s", *(round(medians[(k, c)].per_second) for c in counts)])
        curve.append([layout.label, "p99 ms", *(round(medians[(k, c)].p99_ms, 1) for c in counts)])
    written = results.record(
        "bench-serving-curve",
        title="Serving: p99 and throughput against clients, per layout",
        figures={"baseline_layout": chosen[0].label, "errors": errors},
        tables={
            "curve": results.table(
                ["layout (workers x intra x inter)", "figure", *(str(c) for c in counts)], curve
            )
        },
        load_before=round(load_before[0], 2),
    )
    print(f"results: {written}")
    if errors:
        raise typer.Exit(1)


def _median(points: list[Point]) -> Point:
    def mid(values: list[float]) -> float:
        return float(np.median(values))

    return Point(
        mid([p.per_second for p in points]),
        mid([p.p50_ms for p in points]),
        mid([p.p99_ms for p in points]),
        sum(p.errors for p in points),
        mid([p.server_cpu_ms for p in points]),
        mid([p.busiest_share for p in points]),
        max(p.load for p in points),
    )


if __name__ == "__main__":
    typer.run(main)
