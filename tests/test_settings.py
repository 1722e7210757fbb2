"""Settings read from the environment once, into one frozen object: a bad value is a clear error naming the
variable, and nothing outside astrospect/settings.py may read the environment (make lint fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from astrospect.settings import CORES, PROJECT_ROOT, VARIABLES, Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit

PLANTED = 'import os\n\nLANDING = os.environ.get("ASTROSPECT_LANDING")\nTOKEN = os.getenv("TOKEN")\n'


def test_the_system_metrics_interval_is_read_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", raising=False)
    assert load_settings().system_metrics_interval_s == 2.0
    monkeypatch.setenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", "0.5")
    assert load_settings().system_metrics_interval_s == 0.5
    monkeypatch.setenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", "0")
    with pytest.raises(
        SettingsError, match=r"ASTROSPECT_SYSTEM_METRICS_INTERVAL_S='0': Input should be greater than 0"
    ):
        load_settings()


def test_every_bad_variable_is_named_with_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTROSPECT_DRIFT_ACTION", "panic")
    monkeypatch.setenv("ASTROSPECT_SERVING_WORKERS", "two")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "ASTROSPECT_DRIFT_ACTION='panic': Input should be 'warn' or 'retrain'" in message
    assert "ASTROSPECT_SERVING_WORKERS='two'" in message
    assert "default factory" not in message  # the threads' defaults fail only because the workers did


def test_the_settings_are_built_once_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTROSPECT_SEED", "11")
    first = load_settings()
    assert load_settings() is first and first.seed == 11
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        first.seed = 12  # type: ignore[misc]
    monkeypatch.setenv("ASTROSPECT_SEED", "12")  # a test's in-process change is seen; the old object stays
    assert load_settings().seed == 12 and first.seed == 11


def test_values_are_parsed_into_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASTROSPECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ASTROSPECT_CHALLENGERS", " cnn-ebv, baseline-knn-full ,")
    monkeypatch.setenv("ASTROSPECT_INGEST_CHUNK_MB", "0.5")
    monkeypatch.setenv("ASTROSPECT_SERVING_WORKERS", "1")
    monkeypatch.setenv("ASTROSPECT_STORE", "")  # empty means unset
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    monkeypatch.delenv("ASTROSPECT_LANDING", raising=False)
    settings = load_settings()
    assert settings.challengers == ("cnn-ebv", "baseline-knn-full")
    assert settings.ingest_chunk_bytes == 512 * 1024
    assert settings.store_uri is None and settings.s3_endpoint_url == "http://127.0.0.1:9"
    assert settings.bentoml_home == tmp_path / "home" / "bentoml"
    assert settings.landing_source == str(tmp_path / "home" / "landing")
    # one worker gets every core
    assert settings.serving_intra_op_threads == settings.serving_inter_op_threads == CORES


def test_replace_makes_a_changed_copy_and_refuses_unknown_fields(tmp_path: Path) -> None:
    settings = load_settings()
    moved = settings.replace(home=tmp_path, ingest_chunk_bytes=1024)
    assert (moved.home, moved.ingest_chunk_bytes, moved.ledger_path) == (
        tmp_path,
        1024,
        tmp_path / "ledger.sqlite",
    )
    assert settings.home != tmp_path
    with pytest.raises(TypeError, match="no field hom"):
        settings.replace(hom=tmp_path)


def test_every_field_is_documented_and_read_from_a_named_variable() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, name
        assert info.validation_alias is not None, name


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--no-cache",
        "--config",
        str(PROJECT_ROOT / "pyproject.toml"),
    ]
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, cwd=PROJECT_ROOT, check=False
    )


def test_lint_fails_on_an_environment_read_outside_the_settings(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)
    result = _ruff(str(planted))
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "TID251 `os.environ` is banned" in result.stdout and "TID251 `os.getenv` is banned" in result.stdout
    )
    assert "planted.py:3:" in result.stdout
    for place in ("astrospect/gate/planted.py", "dags/planted.py"):  # where make lint looks, as it names them
        inside = _ruff("--stdin-filename", place, "-", stdin=PLANTED)
        assert inside.returncode == 1 and f"{place}:3:" in inside.stdout, inside.stdout
    # the one reader passes
    assert _ruff("--stdin-filename", "astrospect/settings.py", "-", stdin=PLANTED).returncode == 0


def test_env_example_lists_every_astrospect_variable() -> None:
    listed = (PROJECT_ROOT / ".env.example").read_text()
    missing = [
        name
        for name in VARIABLES
        if name.startswith("ASTROSPECT_") and f"{name}=" not in listed and name != "ASTROSPECT_GIT_COMMIT"
    ]  # the commit is set by the image build, not by a person
    assert missing == []
