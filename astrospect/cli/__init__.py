"""The ``astrospect`` command line: one module per pipeline stage, each registering its commands on the one
app (:mod:`astrospect.cli.app`), listed in data-flow order.

``data`` (synth, synth-check, import), ``gate`` (ingest, validate, snapshot, quarantine, drift), ``models``
(challengers, train, evaluate, predict), ``tracking`` (promote, report), ``serving`` (deploy, serve) and
``studies`` (learning-curve, colour-sweep). Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

from astrospect.cli import data, gate, models, serving, studies, tracking
from astrospect.cli.app import app

STAGES = (data, gate, models, tracking, serving, studies)  # each registered its commands when imported

__all__ = ["STAGES", "app"]
