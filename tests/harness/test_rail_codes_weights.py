"""What the `rail` extra weighs is measured over the packages only it brings into the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.rail_codes import extra_only_packages, installed_bytes

pytestmark = pytest.mark.unit


def test_the_extra_only_packages_are_rails_and_exclude_what_the_project_already_needs() -> None:
    added = extra_only_packages()
    assert {"pz-rail-base", "pz-rail-flexzboost", "pz-rail-cmnn", "pz-rail-dnf", "pz-rail-bpz"} <= set(added)
    assert {"jax", "xgboost", "ceci", "desc-bpz"} <= set(added)
    # shared with the rest of the project: not counted as the extra's weight
    assert not {"numpy", "scipy", "scikit-learn", "qp-prob", "astrospect"} & set(added)


def test_a_lock_with_a_dependency_shared_by_the_extra_and_the_project_counts_it_once(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        """
[[package]]
name = "astrospect"
dependencies = [{ name = "numpy" }]
[package.optional-dependencies]
rail = [{ name = "rail-thing" }]
[package.dev-dependencies]
dev = [{ name = "moto", extra = ["server"] }]

[[package]]
name = "rail-thing"
dependencies = [{ name = "numpy" }, { name = "jax" }, { name = "flask" }]

[[package]]
name = "moto"
[package.optional-dependencies]
server = [{ name = "flask" }]

[[package]]
name = "numpy"
[[package]]
name = "jax"
[[package]]
name = "flask"
"""
    )
    # flask arrives with moto[server] in the dev group, so only rail-thing and jax are the extra's own
    assert extra_only_packages(lock) == ["jax", "rail-thing"]


def test_installed_bytes_counts_a_distributions_files() -> None:
    assert installed_bytes("pz-rail-cmnn") > 1000
