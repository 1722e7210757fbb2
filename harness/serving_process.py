"""``astrospect serve`` as a child process: start it on a free loopback port, wait until ready, stop it all.

Used by the serving benchmark and the integration tests. ``bentoml serve`` is a process tree: an arbiter
and one worker per ``ASTROSPECT_SERVING_WORKERS``, each worker in a session of its own. Stopping sends
SIGTERM to the arbiter, which stops its workers; if that hangs, every process of the tree is killed by pid,
so no worker outlives the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from harness.ports import free_port

READY_TIMEOUT_S = 300.0


@contextmanager
def served(env: Mapping[str, str], log_path: Path, *serve_args: str) -> Iterator[tuple[str, int]]:
    """Run ``astrospect serve --port <free port> *serve_args``; yield (URL, pid) once ``/readyz`` is 200."""
    astrospect = str(Path(sys.executable).parent / "astrospect")
    with served_command(env, log_path, [astrospect, "serve", *serve_args]) as started:
        yield started


@contextmanager
def served_command(env: Mapping[str, str], log_path: Path, command: list[str]) -> Iterator[tuple[str, int]]:
    """Run ``command --port <free port>`` (any ``bentoml serve``); yield (URL, pid) once ``/readyz`` is 200."""
    port = free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, server, log_path)
        yield url, server.pid
    finally:
        stop(server)


def wait_until_ready(
    url: str, server: subprocess.Popen[bytes], log_path: Path, timeout_s: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"bentoml serve exited with {server.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/readyz not 200 after {timeout_s:.0f} s:\n{log_path.read_text()[-4000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    tree = descendants(server.pid)
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
    for pid in tree:  # workers the arbiter failed to stop
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every process below it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15
    return total
