"""The small night the documentation's shell and Python blocks run against.

A folder that looks like a clone after ``make run``: every top-level entry of the repository (Makefile,
astrospect/, .venv, docs/, ...) linked into it, except ``data/``, which is this night's ASTROSPECT_HOME. That
home holds a landing zone with one shard named and sized as ``make run``'s first one (``sim-s1-0000.h5``,
1000 cutouts with labels and E(B-V), from the serving tests' ``galaxy_shard``: instant, where ``astrospect
synth --n 200`` alone takes 40 s on 2 cores; it has no ``ra``/``dec``/``truth``), a real MLflow server on loopback with a registered champion, and a real ``bentoml serve``
(``astrospect serve``) of it: the serving tests' ``served_champion``, with the PDF champion so that every
route the docs show answers, ``predict_file`` with ``format=qp`` included.

Blocks run in a working folder of their own per document (a subfolder of the night's root, linked the same
way), so relative paths such as ``data/landing/sim-s1-0000.h5`` mean what they mean in a clone.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from astrospect.settings import PROJECT_ROOT
from tests.support.serving_stack import Stack, galaxy_shard, served_champion

LANDING_SHARD = "sim-s1-0000.h5"  # the name of make run's first shard (DEMO_SEED 1)
LANDING_CUTOUTS = 1000  # make run's shard size, so counts the docs show hold
# Top-level entries of the repository a working folder does not link: the night's own home instead of the
# developer's data/, and what a command must not write into the checkout through a link.
NOT_LINKED = frozenset({".git", "data", "site", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"})
# The ports the docs use (make serve's 3000, make mlflow-up's 5000), on either loopback name.
SERVING_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):3000\b")
MLFLOW_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):5000\b")


@dataclass(frozen=True)
class DocsNight:
    root: Path  # the clone-like folder
    home: Path  # ASTROSPECT_HOME, root/data
    env: dict[str, str]  # what a block's shell has: the stack's environment, this environment's bin first
    stack: Stack

    def rewrite(self, source: str) -> str:
        """A block's text with the docs' addresses replaced by this night's servers'."""
        return rewrite_addresses(source, self.stack.url, self.stack.registry)

    def workdir(self, name: str) -> Path:
        """A clone-like working folder for one document's blocks (created once)."""
        folder = self.root / "work" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        if not folder.exists():
            folder.mkdir(parents=True)
            link_checkout(folder, self.home)
        return folder


def rewrite_addresses(source: str, serving_url: str, mlflow_url: str) -> str:
    """``source`` with the docs' serving and MLflow addresses replaced by ``serving_url``'s and ``mlflow_url``'s."""
    serving = serving_url.removeprefix("http://")
    mlflow = mlflow_url.removeprefix("http://")
    return MLFLOW_ADDRESS.sub(mlflow, SERVING_ADDRESS.sub(serving, source))


def link_checkout(folder: Path, home: Path) -> None:
    """Link the repository's top-level entries into ``folder``, and ``folder/data`` to ``home``."""
    for entry in PROJECT_ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (folder / entry.name).symlink_to(entry)
    (folder / "data").symlink_to(home)


@contextmanager
def docs_night(root: Path) -> Iterator[DocsNight]:
    """Build the night under ``root`` and serve it; everything stops on exit."""
    home = root / "data"
    (home / "landing").mkdir(parents=True)
    galaxy_shard(home / "landing" / LANDING_SHARD, n=LANDING_CUTOUTS, seed=1, with_ebv=True)
    with served_champion(home, pdf=True) as stack:
        env = dict(stack.env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["COLUMNS"] = "100"  # a terminal of the width the report is designed for
        env.pop("VIRTUAL_ENV", None)
        yield DocsNight(root, home, env, stack)
