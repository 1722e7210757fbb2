"""Where a served request's CPU goes: py-spy on every ``bentoml serve`` worker while wrk loads one route.

``python -m harness.bench.serving_profile --label before|after`` writes
``docs/results/serving-profile-<label>.json``. The champion is ``make bench-serving``'s (an untrained PDF CNN
over 280 bins, installed as ``astrospect deploy`` does). For each route, wrk sends single-cutout bodies while
one ``py-spy record`` per worker samples its Python threads that are running (py-spy leaves out a thread the
OS reports waiting: the event loop in epoll, an idle worker thread). Each sample's stack goes to one
category (:data:`CATEGORIES`, the first rule that matches from the innermost frame out). Beside the samples,
each worker's CPU is split by thread from ``/proc``: the event loop's thread (HTTP, decoding, encoding,
metrics) and the others (the model call and TensorFlow's own threads), which py-spy cannot see into.
The JSON holds, per route, each category's share of the samples, the top frames (self time) by share, the
service's CPU per request, the thread split and the mean batch size, with the machine, load average, date
and command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from astrospect import results
from harness.bench.serving_floor import (
    ROUTES,
    batch_counts,
    check_answer,
    route_bodies,
    run_wrk,
    wrk_script,
)
from harness.serving_process import descendants, served, tree_cpu_seconds

WORKER_SCRIPT = "_bentoml_impl.worker.service"
# (category, substrings of a frame "function (file:line)"): the first rule matching the innermost frame
# that matches any rule names the sample's category. Order matters only where one frame could match two.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idle", ("select (selectors.py", "wait (threading.py", "_worker (concurrent/futures", "get (queue.py")),
    ("metrics", ("astrospect/serving/monitoring.py", "prometheus_client/")),
    ("PDF summary", ("astrospect/serving/pdfs.py", "astrospect/pdf/")),
    ("TensorFlow call", ("tensorflow/", "keras/", "astrospect/models/")),
    (
        "JSON encoding",
        ("serialize", "model_dump", "to_http_response", "json/encoder", "orjson", "dumps ("),
    ),
    (
        "body read and validation",
        (
            "astrospect/serving/decoding.py",
            "astrospect/serving/schemas.py",
            "astrospect/serving/uploads.py",
            "from_http_request",
            "parse_request",
            "body (starlette",
            "form (starlette",
            "formparsers.py",
            "multipart/",
            "validate_",
        ),
    ),
    ("batcher hand-off", ("astrospect/serving/batching.py", "anyio/", "to_thread")),
    ("request guard", ("astrospect/serving/guards.py",)),
    ("service code", ("astrospect/serving/service.py",)),
    ("HTTP server and BentoML", ("uvicorn/", "h11", "httptools", "starlette/", "bentoml/", "_bentoml_")),
    ("event loop", ("asyncio/",)),
)
RESULTS_NAME = "serving-profile-{label}"
METHOD = (
    "py-spy record --nonblocking on each bentoml worker while wrk -t2 -c16 sends single-cutout bodies; shares"
    " are of the samples of running Python threads, both workers together"
)


def frames_of(line: str) -> tuple[list[str], int]:
    """A py-spy raw line, ``root;...;leaf count``, as (frames root first, samples)."""
    stack, count = line.rsplit(" ", 1)
    return stack.split(";"), int(count)


def category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def summarise(raw_files: list[Path], top: int = 25) -> dict[str, Any]:
    """Category shares and the top self-time frames of the busy samples in py-spy raw files."""
    by_category: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    frame_category: dict[str, str] = {}
    for raw in raw_files:
        for line in raw.read_text().splitlines():
            if not line.strip():
                continue
            frames, count = frames_of(line)
            name = category(frames)
            by_category[name] += count
            if name != "idle":
                by_frame[frames[-1]] += count
                frame_category[frames[-1]] = name
    idle = by_category.pop("idle", 0)
    busy = sum(by_category.values())
    return {
        "busy_samples": busy,
        "idle_samples": idle,
        "categories": {name: round(n / busy, 4) for name, n in by_category.most_common()},
        "top_frames": [
            {"frame": frame, "share": round(n / busy, 4), "category": frame_category[frame]}
            for frame, n in by_frame.most_common(top)
        ],
    }


def worker_pids(server_pid: int) -> list[int]:
    found = []
    for pid in descendants(server_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if WORKER_SCRIPT in command:
            found.append(pid)
    if not found:
        raise RuntimeError(f"no {WORKER_SCRIPT} process below bentoml serve (pid {server_pid})")
    return found


EVENT_LOOP, OTHERS = "event loop thread", "other threads (model call, TensorFlow)"


def thread_cpu_seconds(pids: list[int]) -> dict[tuple[int, int], float]:
    """CPU seconds so far of every thread of the workers, by (process id, thread id)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            found[(pid, int(stat.parent.name))] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def thread_split(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float]
) -> dict[str, float]:
    """CPU seconds between two readings: the event loop's threads (thread id = process id) and the others.
    A thread that ended meanwhile (anyio retires idle worker threads) is missing from ``after`` and its
    last seconds with it, so the others' figure is a lower bound."""
    split = {EVENT_LOOP: 0.0, OTHERS: 0.0}
    for (pid, tid), seconds in after.items():
        split[EVENT_LOOP if tid == pid else OTHERS] += seconds - before.get((pid, tid), 0.0)
    return split


def profile_route(
    url: str, server_pid: int, script: Path, folder: Path, route: str, seconds: float, rate: int
) -> dict[str, Any]:
    run_wrk(url, script, 3.0, 2, 16)  # warm
    base = url.rsplit("/", 1)[0]
    calls, cutouts = batch_counts(base)
    raw_files, spies = [], []
    for pid in worker_pids(server_pid):
        raw = folder / f"{route}-{pid}.txt"
        raw_files.append(raw)
        spies.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    str(rate),
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    time.sleep(1.0)  # py-spy attached
    cpu = tree_cpu_seconds(server_pid)
    threads = thread_cpu_seconds(worker_pids(server_pid))
    run = run_wrk(url, script, seconds - 2, 2, 16)
    cpu = tree_cpu_seconds(server_pid) - cpu
    split = thread_split(threads, thread_cpu_seconds(worker_pids(server_pid)))
    for spy in spies:
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode()[-2000:]}")
    after_calls, after_cutouts = batch_counts(base)
    summary = summarise(raw_files)
    return {
        "req_per_s": run.req_per_s,
        "server_cpu_ms_per_request": round(1000 * cpu / max(run.requests, 1), 3),
        "mean_batch_cutouts": round((after_cutouts - cutouts) / max(after_calls - calls, 1), 2),
        "workers_profiled": len(raw_files),
        "cpu_ms_per_request_by_thread": {
            key: round(1000 * value / max(run.requests, 1), 3) for key, value in split.items()
        },
        **summary,
    }


def record_profile(
    label: str, found: dict[str, Any], load_before: float | None, provenance: str | None = None
) -> Path:
    """The profile as a results file (astrospect.results): per route the server CPU per request, split by
    thread, the mean batch, and each category's share of the samples; the top frames per route."""
    routes = list(found)
    categories = sorted(
        {category for route in routes for category in found[route]["categories"]},
        key=lambda category: -max(found[route]["categories"].get(category, 0.0) for route in routes),
    )
    threads = sorted({thread for route in routes for thread in found[route]["cpu_ms_per_request_by_thread"]})
    return results.record(
        RESULTS_NAME.format(label=label),
        title=f"Where a served request's CPU goes ({label})",
        figures={
            **{f"{route}_cpu_ms_per_request": found[route]["server_cpu_ms_per_request"] for route in routes},
            **{f"{route}_mean_batch": found[route]["mean_batch_cutouts"] for route in routes},
            "method": METHOD,
        },
        tables={
            "categories": results.table(
                ["category", *routes],
                [
                    [category, *(found[route]["categories"].get(category) for route in routes)]
                    for category in categories
                ],
            ),
            "threads": results.table(
                ["CPU ms per request", *routes],
                [
                    [thread, *(found[route]["cpu_ms_per_request_by_thread"].get(thread) for route in routes)]
                    for thread in threads
                ],
            ),
            "top_frames": results.table(
                ["route", "frame", "share", "category"],
                [
                    [route, frame["frame"], frame["share"], frame["category"]]
                    for route in routes
                    for frame in found[route]["top_frames"]
                ],
            ),
        },
        load_before=load_before,
        command=f"make serving-profile PROFILE_LABEL={label}",
        provenance=provenance,
    )


def main(
    label: str = typer.Option(..., help="before or after: names the results file."),
    seconds: float = typer.Option(12.0, help="Seconds of wrk load (and py-spy sampling) per route."),
    rate: int = typer.Option(200, help="py-spy samples per second per worker."),
    routes: str = typer.Option(",".join(ROUTES), help="Comma-separated routes to profile."),
    raw_dir: Path | None = typer.Option(None, help="Keep py-spy's raw stacks here."),
) -> None:
    from harness.bench.serving import install_bench_model, synthetic_cutouts

    load_before = os.getloadavg()
    bodies = route_bodies(synthetic_cutouts(1, seed=4))
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="serving-profile-") as tmp:
        home = Path(tmp)
        folder = raw_dir or home
        folder.mkdir(parents=True, exist_ok=True)
        bento, _ = install_bench_model(home, pdf=True)
        env = {key: value for key, value in os.environ.items() if key != "BENTOML_HOME"}
        env.update(ASTROSPECT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", BENTOML_DO_NOT_TRACK="true")
        with served(env, home / "serve.log", "--bento", bento) as (url, pid):
            for route in routes.split(","):
                check_answer(f"{url}/{route}", bodies[route])
                script = wrk_script(bodies[route], home, route)
                found[route] = profile_route(f"{url}/{route}", pid, script, folder, route, seconds, rate)
                shares = ", ".join(f"{k} {v:.0%}" for k, v in found[route]["categories"].items())
                print(
                    f"{route}: {found[route]['server_cpu_ms_per_request']} ms CPU/request; {shares}",
                    flush=True,
                )
    out = record_profile(label, found, load_before[0])
    print(f"written {out}")


if __name__ == "__main__":
    typer.run(main)
