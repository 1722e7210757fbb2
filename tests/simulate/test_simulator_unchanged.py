"""The simulator's output is bit-identical to the reference digests (``simulator_digests.json``).

Guards refactoring: moving code must not change one drawn galaxy, one pixel, the calibration's pieces,
synth-check's report or the shipped ``spectral_mixture.json``. See ``simulator_digests.py`` for what is
digested and how the reference was made.
"""

from __future__ import annotations

import json

import pytest

from tests.simulate import simulator_digests

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    digests: dict[str, str] = json.loads(simulator_digests.DIGESTS_JSON.read_text())["digests"]
    return digests


def _changed(reference: dict[str, str], current: dict[str, str]) -> list[str]:
    """Keys whose digest differs, or that one side lacks (a dropped or new array is a change too)."""
    return sorted(key for key in reference.keys() | current.keys() if reference.get(key) != current.get(key))


@pytest.mark.parametrize(
    "group",
    ["mixture_file_digest", "calibration_digests", "drawn_digests", "rendered_digests", "report_digests"],
)
def test_simulator_output_is_bit_identical_to_the_reference(reference: dict[str, str], group: str) -> None:
    current = getattr(simulator_digests, group)()
    prefixes = {key.split("/")[0] for key in current}
    expected = {key: value for key, value in reference.items() if key.split("/")[0] in prefixes}
    assert current, f"{group} digested nothing"
    assert not _changed(expected, current), f"{group}: changed {_changed(expected, current)}"
