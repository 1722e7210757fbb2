"""Deploy helpers that need no server: BentoML tag names, the bentofile, finding the Keras file."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrospect.deploy import Champion, bento_config, bento_model_name, keras_file


@pytest.mark.parametrize(
    ("registered", "tag_name"),
    [
        ("astrospect-photoz", "astrospect-photoz"),
        ("AstroSpect PhotoZ v2", "astrospect-photoz-v2"),
        ("_x_", "x"),
    ],
)
def test_registered_names_become_bentoml_tag_names(registered: str, tag_name: str) -> None:
    assert bento_model_name(registered) == tag_name


def test_a_name_without_usable_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="no characters usable in a BentoML tag"):
        bento_model_name("!!!")


def test_the_bentofile_names_the_service_and_pins_no_packages_online() -> None:
    config = bento_config()
    assert config["service"] == "astrospect.serving.service:PhotoZ"
    assert config["python"]["lock_packages"] is False  # locking would resolve packages over the network
    assert "astrospect/**/*.py" in config["include"]


def test_champion_labels_carry_the_registry_identity() -> None:
    champion = Champion("astrospect-photoz", "7", "abc123", "models:/astrospect-photoz/7", None, {"mae": 0.1})
    assert champion.labels() == {
        "mlflow_model_name": "astrospect-photoz",
        "mlflow_model_version": "7",
        "mlflow_run_id": "abc123",
        "dataset_version": "unknown",
    }


def _mlmodel(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "MLmodel").write_text(text)
    return folder


def test_keras_file_is_found_through_the_flavor(tmp_path: Path) -> None:
    model_dir = _mlmodel(tmp_path / "m", "flavors:\n  keras:\n    data: data\n")
    (model_dir / "data").mkdir()
    (model_dir / "data" / "model.keras").write_bytes(b"zip")
    assert keras_file(model_dir) == model_dir / "data" / "model.keras"


@pytest.mark.parametrize(
    ("mlmodel", "message"),
    [
        (None, "no MLmodel file"),
        ("flavors:\n  sklearn:\n    pickled_model: model.pkl\n", "expected a keras or tensorflow flavor"),
        ("flavors:\n  tensorflow:\n    data: data\n", "no .keras file"),
    ],
)
def test_keras_file_errors_say_what_is_wrong(tmp_path: Path, mlmodel: str | None, message: str) -> None:
    folder = tmp_path / "m"
    if mlmodel is None:
        folder.mkdir()
    else:
        _mlmodel(folder, mlmodel)
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        keras_file(folder)
