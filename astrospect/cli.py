"""The ``astrospect`` command line: one command per pipeline stage, nothing else.

Heavy libraries (TensorFlow, MLflow, GE, BentoML) are imported inside each command, so ``--help`` is
instant and the Airflow DAG can import this package's light modules at parse time.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="AstroSpect: photometric redshifts from ugriz cutouts.")
