"""Data gate throughput: ingest MB/s from a loopback S3 beside a plain boto3 download of the same objects
(the ceiling), and validation cutouts/s beside just reading and summarising the same shards.

The S3 endpoint is moto's server in its own process (so server and client do not share a GIL), on
127.0.0.1 and a free port. Both downloads use the same TransferConfig; ingest adds hashing, fsync, the
hard-link publish and the ledger. Each is timed ``repeats`` times, alternating, best run kept; the load
average is printed beside the figures (they are ratios measured in the same run for a reason).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from astrospect import results
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard
from harness.ports import free_port

BUCKET = "bench"


def _start_moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within 30 s")


def _plain_download(settings: Settings, keys: list[str], out: Path) -> float:
    """The ceiling: boto3's own download of every object, same transfer settings, nothing else."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    start = time.perf_counter()  # from nothing, like ingest: client creation included
    client = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    config = TransferConfig(
        multipart_threshold=settings.ingest_chunk_bytes,
        multipart_chunksize=settings.ingest_chunk_bytes,
        max_concurrency=settings.ingest_max_concurrency,
    )
    out.mkdir(parents=True)
    for key in keys:
        with open(out / Path(key).name, "wb") as sink:
            client.download_fileobj(BUCKET, key, sink, Config=config)
    return time.perf_counter() - start


def main(
    shards: int = typer.Option(6, help="Shards uploaded to the loopback S3."),
    rows: int = typer.Option(1000, help="Cutouts per shard (~20 KB each)."),
    repeats: int = typer.Option(3, min=2, help="Timed rounds of each path; the best is kept."),
) -> None:
    import boto3

    from astrospect.gate.ingest import ingest
    from astrospect.gate.validate import validate_pending

    load_before = os.getloadavg()
    port = free_port()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    server = _start_moto(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            keys = []
            for k in range(shards):
                path = write_fake_shard(
                    root / "src" / f"bench-{k:03d}.h5", rows, seed=k, objid_start=1 + k * rows
                )
                keys.append(f"incoming/{path.name}")
                client.upload_file(str(path), BUCKET, keys[-1])
            total_mb = sum(p.stat().st_size for p in (root / "src").iterdir()) / 1e6
            base = load_settings()

            plain_s, ingest_s, homes = [], [], []
            for attempt in range(repeats):
                plain_s.append(_plain_download(base, keys, root / f"plain-{attempt}"))
                homes.append(base.replace(home=root / f"home-{attempt}"))
                result = ingest(f"s3://{BUCKET}/incoming/", homes[-1])
                assert len(result.new) == shards
                ingest_s.append(result.seconds)

            # Validation of each ingest's shards: the first in a fresh process (GE's import, ~7 s here, is
            # what an Airflow task pays), the others warm (best kept); beside reading + summarising the same
            # shards in this process (the ceiling, best of the rounds between them) and in the gate's
            # sandboxed reader (what the child process costs).
            summarise_s = [_summarise(sorted(homes[0].raw_dir.glob("*.h5")))[0]]
            cold = validate_pending(homes[0])
            warm, summarise_cpu, warm_cpu, in_ge = [], [], [], []
            for home in homes[1:]:
                seconds, cpu = _summarise(sorted(home.raw_dir.glob("*.h5")))
                summarise_s.append(seconds)
                summarise_cpu.append(cpu)
                before = _cpu_seconds()
                with _time_in_great_expectations() as ge_runs:
                    warm.append(
                        validate_pending(home)
                    )  # its sandboxed reader is a child: counted once reaped
                warm_cpu.append(_cpu_seconds() - before)
                in_ge.append(ge_runs)
            sandboxed_s = _summarise_sandboxed(sorted(homes[-1].accepted_dir.glob("*.h5")), base)
            for verdicts in (cold, *warm):
                assert len(verdicts.accepted) == shards, verdicts.quarantined
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = os.getloadavg()

    plain_rate, ingest_rate = total_mb / min(plain_s), total_mb / min(ingest_s)
    n = shards * rows
    print(f"\ningest from loopback S3 (moto server), {shards} objects, {total_mb:.1f} MB, best of {repeats}")
    print(f"{'path':<34}{'MB/s':>10}{'ratio':>10}")
    print(f"{'plain boto3 download (ceiling)':<34}{plain_rate:>10.1f}{1.0:>10.2f}")
    print(f"{'astrospect ingest':<34}{ingest_rate:>10.1f}{ingest_rate / plain_rate:>10.2f}")
    summarise_rate = n / min(summarise_s)
    print(f"\nvalidation, {shards} shards x {rows} cutouts, all accepted")
    print(f"{'path':<44}{'cutouts/s':>10}{'ratio':>10}")
    print(f"{'read + summarise only (ceiling)':<44}{summarise_rate:>10.0f}{1.0:>10.2f}")
    rows_out = [
        ("read + summarise in the sandboxed reader", n / sandboxed_s),
        ("validate, cold (GE import included)", cold.cutouts_per_s),
        ("validate, warm", max(verdicts.cutouts_per_s for verdicts in warm)),
    ]
    for name, rate in rows_out:
        print(f"{name:<44}{rate:>10.0f}{rate / summarise_rate:>10.2f}")
    # CPU seconds (this process and its reaped children), robust to other jobs on the cores: the ratio of the
    # ceiling's CPU to validation's, per cutout. The wall-clock ratio also gains from the reader's own core.
    cpu_ratio = min(summarise_cpu) / min(warm_cpu)
    print(f"{'validate, warm: CPU per cutout vs ceiling':<44}{'':>10}{cpu_ratio:>10.2f}")
    # Great Expectations' own floor: the seconds inside its validations in the best warm run. The gate cannot
    # beat reading plus that, so the best wall-clock ratio it allows is ceiling / (ceiling + floor).
    best = min(range(len(warm)), key=lambda k: warm[k].seconds)
    runs, ge_s = len(in_ge[best]), sum(in_ge[best])
    print(
        f"of the best warm run ({warm[best].seconds:.2f} s): {ge_s:.2f} s in {runs} Great Expectations validations"
        f" ({1000 * ge_s / max(runs, 1):.0f} ms each); reading + GE alone would give"
        f" {min(summarise_s) / (min(summarise_s) + ge_s):.2f} of the ceiling"
    )
    print(f"\nload average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}")
    written = results.record(
        "bench-ingest",
        title="Data gate: ingest and validation against their ceilings",
        figures={
            "ingest_over_plain_boto3": round(ingest_rate / plain_rate, 2),
            "warm_validation_of_ceiling": round(rows_out[2][1] / summarise_rate, 2),
            "cold_validation_of_ceiling": round(rows_out[1][1] / summarise_rate, 2),
            "shards": shards,
            "rows_per_shard": rows,
        },
        load_before=round(load_before[0], 2),
    )
    print(f"results: {written}")


def _summarise(paths: list[Path]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of reading and summarising ``paths`` in this process."""
    from astrospect.data.summaries import summarize_shard

    start, cpu = time.perf_counter(), _cpu_seconds()
    for path in paths:
        summarize_shard(path)
    return time.perf_counter() - start, _cpu_seconds() - cpu


@contextmanager
def _time_in_great_expectations() -> Iterator[list[float]]:
    """Seconds of each Great Expectations validation the gate runs inside the block."""
    from astrospect.gate.suites import Gate

    spent: list[float] = []
    validate = Gate._validate

    def timed(self: Gate, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return validate(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    Gate._validate = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Gate._validate = validate  # type: ignore[method-assign]


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _summarise_sandboxed(paths: list[Path], settings: Settings) -> float:
    """The same reading through the gate's child process, started beforehand (its start is per run)."""
    from astrospect.gate.sandbox import Limits, Sandbox

    with Sandbox(Limits.from_settings(settings)) as sandbox:
        sandbox.read(paths[0])
        start = time.perf_counter()
        for path in paths:
            assert sandbox.read(path).error is None
        return time.perf_counter() - start


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    typer.run(main)
