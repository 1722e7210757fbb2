"""Long-running service processes on loopback: start in their own session, wait until healthy, stop for good.

Every process started here carries two environment variables, ``ASTROSPECT_TOPOLOGY`` (one id per
topology) and ``ASTROSPECT_SERVICE`` (its service name). Children inherit them, including those that
leave the process group (Airflow's task runner calls ``setpgid``), so :func:`processes_with_marker` finds
every descendant by reading ``/proc/*/environ``: that is how teardown proves nothing is left behind, and
how the fault test kills a worker the way a dying machine would, task runners included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astrospect.settings import get_logger

log = get_logger(__name__)

TOPOLOGY_MARKER = "ASTROSPECT_TOPOLOGY"
SERVICE_MARKER = "ASTROSPECT_SERVICE"


class ServiceError(RuntimeError):
    """A service that did not start, or did not become healthy in time. The message names it and its log."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.5) -> float:
    """Poll ``check`` until it returns True; return the seconds waited, or raise naming ``what``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise ServiceError(f"{what}: not ready after {timeout_s:.0f} s")
        time.sleep(interval_s)


def _read_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}  # gone between listing /proc and reading it, or not ours to read
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    environ: dict[str, str]


def _process_table() -> dict[int, ProcessInfo]:
    """Every live process, zombies excluded, with its parent, group, session and environment."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, ppid, pgrp, session = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
        if state == "Z":
            continue
        pid = int(entry.name)
        table[pid] = ProcessInfo(pid, ppid, pgrp, session, _read_environ(pid))
    return table


def processes_with_marker(
    topology_id: str, service: str | None = None, roots: Sequence[int] = ()
) -> list[int]:
    """PIDs of live processes of this topology (optionally of one service), zombies excluded.

    A process belongs when it carries the markers, shares a group or session with one of ``roots``
    (the leaders we started), or descends from any of those. Three ways because each alone misses some:
    PostgreSQL's and Redis's children overwrite their environment with their process title and
    PostgreSQL's call ``setsid``; Airflow's task runners leave the group but keep the environment.
    """
    table = _process_table()
    members = {
        info.pid
        for info in table.values()
        if info.pgrp in roots
        or info.session in roots
        or (
            info.environ.get(TOPOLOGY_MARKER) == topology_id
            and (service is None or info.environ.get(SERVICE_MARKER) == service)
        )
    } | {pid for pid in roots if pid in table}
    grew = True
    while grew:  # add children of members until nothing new joins
        children = {info.pid for info in table.values() if info.ppid in members} - members
        grew = bool(children)
        members |= children
    members.discard(os.getpid())  # never ourselves, should the test runner be a child of a leader
    return sorted(members)


def _signal_quietly(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class ManagedProcess:
    """One service: a command in its own session, its output in a log file, a health check.

    ``stop_signal`` is what asks the leader for a clean shutdown (PostgreSQL wants SIGINT for a fast one).
    ``user`` runs it as that account (PostgreSQL refuses to run as root).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    topology_id: str
    health: Callable[[], bool] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    user: str | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    ready_after_s: float | None = None
    seen_pids: set[int] = field(default_factory=set, repr=False)

    def start(self) -> None:
        env = {**self.env, TOPOLOGY_MARKER: self.topology_id, SERVICE_MARKER: self.name}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.popen = subprocess.Popen(
                list(self.argv),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach its workers, not us
                user=self.user,
                cwd=self.cwd,
            )
        self.started_at = time.monotonic()
        self.seen_pids.add(self.popen.pid)
        log.info("started %s (pid %d): %s", self.name, self.popen.pid, " ".join(self.argv[:4]))

    def wait_healthy(self, timeout_s: float) -> None:
        def healthy() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.popen.returncode} before becoming healthy; "
                    f"last log lines of {self.log_path}:\n{self.log_tail()}"
                )
            return self.health() if self.health is not None else True

        try:
            wait_until(healthy, timeout_s=timeout_s, what=self.name)
        except ServiceError as error:
            if "not ready" in str(error):
                raise ServiceError(
                    f"{error}; last log lines of {self.log_path}:\n{self.log_tail()}"
                ) from error
            raise
        self.ready_after_s = time.monotonic() - self.started_at
        log.info("%s healthy after %.1f s", self.name, self.ready_after_s)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def state(self) -> str:
        """A one-word state for the status table: healthy, unhealthy, exited(N) or not started."""
        if self.popen is None:
            return "not started"
        if self.popen.poll() is not None:
            return f"exited({self.popen.returncode})"
        if self.health is None:
            return "running"
        try:
            return "healthy" if self.health() else "unhealthy"
        except (OSError, ValueError) as error:  # a health probe that cannot connect says so
            return f"unhealthy ({type(error).__name__})"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def descendants(self) -> list[int]:
        """Live processes of this service. Remembers every one seen, because a child whose leader died
        (reparented to init, environment overwritten) can no longer be found any other way."""
        roots = [self.popen.pid] if self.popen is not None else []
        found = processes_with_marker(self.topology_id, self.name, roots)
        self.seen_pids.update(found)
        alive = set(_process_table())
        return sorted(pid for pid in self.seen_pids if pid in alive and pid != os.getpid())

    def stop(self, grace_s: float = 20.0) -> None:
        """Ask the leader to stop, then its group, then SIGKILL whatever of this service is still alive."""
        if self.popen is None:
            return
        self.descendants()  # remember the children while their parent still names them
        if self.popen.poll() is None:
            _signal_quietly(self.popen.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.0f s of %s; terminating its group",
                    self.name,
                    grace_s,
                    self.stop_signal.name,
                )
        for pid in self.descendants():
            _signal_quietly(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while self.descendants() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.kill_hard()

    def kill_hard(self) -> list[int]:
        """SIGKILL the service and every descendant (what a node or container dying does); return their PIDs."""
        victims = self.descendants()
        if self.popen is not None and self.popen.poll() is None:
            victims = sorted({self.popen.pid, *victims})
        for pid in victims:
            _signal_quietly(pid, signal.SIGKILL)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired as error:
                raise ServiceError(f"{self.name} (pid {self.popen.pid}) survived SIGKILL") from error
        wait_until(lambda: not self.descendants(), timeout_s=10, what=f"{self.name} processes to die")
        return victims
