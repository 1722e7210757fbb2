"""``python -m harness.topology``: bring the native scaled-out topology up for a person, until Ctrl-C.

Prints each service's state, the URLs and the environment a shell needs to use it (``MLFLOW_TRACKING_URI``,
``AWS_ENDPOINT_URL``, ...); tears everything down on Ctrl-C or SIGTERM and checks that nothing is left.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from pathlib import Path
from types import FrameType

from astrospect.settings import PROJECT_ROOT
from harness.topology.cluster import running_topology


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.topology", description=__doc__)
    parser.add_argument("--dags", type=Path, default=PROJECT_ROOT / "dags", help="the Dags folder")
    args = parser.parse_args()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with running_topology(args.dags) as topology:
        for name, state, pid, ready in topology.status_rows():
            print(f"{name:<15} {state:<10} pid {pid:<8} ready after {ready}")
        config = topology.config
        print(
            f"\nAirflow  {config.url('airflow_api')}  (user admin, password {config.airflow_admin_password})"
        )
        print(f"MLflow   {config.url('mlflow')}")
        print(f"S3       {config.url('s3')}  (buckets astrospect-landing, astrospect-mlflow)")
        print(f"logs     {topology.log_dir}\n\n# for a shell:")
        for name, value in topology.client_environment().items():
            print(f"export {name}={shlex.quote(value)}")
        print("\nCtrl-C stops every service.")
        stop.wait()


if __name__ == "__main__":
    main()
