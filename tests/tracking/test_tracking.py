"""Tracking, registry and promotion against a real ``mlflow server`` (SQLite + local artifacts, loopback).

The session fixture runs the real pipeline (``run_challenger``: train 4 epochs, score, plots) for the default
session's challengers (full, clipped and their colour baselines) on two tiny shards and logs them the way
the DAG's training tasks do. The policy chain drives the
promotion rule through every branch with reader models whose metrics are known by construction.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import math
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from astrospect.data.dataset import RowSelection, select_holdout
from astrospect.data.metrics import METRIC_NAMES
from astrospect.models import registry as challengers
from astrospect.models.pipeline import ChallengerOutcome
from astrospect.promote import promote_session
from astrospect.settings import Settings
from astrospect.tracking import registry, runs, sessions, tags
from astrospect.tracking.server import TrackingServerError, check_tracking_server, client_for
from tests.support.tracking import (
    EXACT_BAND,
    NOISY_BAND,
    OFFSET_BAND,
    OUTLIER_BAND,
    free_port,
    log_reader,
    log_reader_in_process,
    settings_for,
    write_reader_shards,
)

pytestmark = pytest.mark.integration

DATASET_VERSION = "test-v1"
AIRFLOW_RUN_ID = "manual__2026-01-01T02:30:00+00:00"


@dataclass
class Session:
    parent_run_id: str
    outcomes: dict[str, ChallengerOutcome]  # by challenger name
    logged: dict[str, runs.LoggedRun]
    compare_url: str


def must_not_train() -> ChallengerOutcome:
    raise AssertionError("a challenger already logged in this session was trained again")


@pytest.fixture(scope="module")
def server_url(mlflow_url: str) -> str:
    return mlflow_url  # the session's server: this module's experiments and models have names of their own


@pytest.fixture(scope="module")
def settings(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_for(tmp_path_factory.mktemp("home"), server_url, "tracking-tests")


@pytest.fixture(scope="module")
def client(settings: Settings) -> MlflowClient:
    return client_for(settings)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_reader_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def session(settings: Settings, shards: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Session:
    from astrospect.data.dataset import select_splits
    from astrospect.models.pipeline import run_challenger
    from astrospect.models.registry import TrainConfig

    out = tmp_path_factory.mktemp("models")
    parent = sessions.start_session(settings, DATASET_VERSION, shards, airflow_run_id=AIRFLOW_RUN_ID)
    outcomes, logged = {}, {}
    for challenger in challengers.for_session():
        config = TrainConfig(out_dir=out / challenger.name, epochs=4, batch_size=64, patience=4)
        outcome = run_challenger(challenger, select_splits(shards, challenger.clipping), config)
        outcomes[challenger.name] = outcome
        logged[challenger.name] = runs.train_once(
            settings, parent, challenger, lambda outcome=outcome: outcome, shards
        )
    url = sessions.end_session(parent, settings)
    return Session(parent, outcomes, logged, url)


@pytest.fixture(scope="module")
def holdout(shards: list[Path]) -> RowSelection:
    return select_holdout(shards)


def children(client: MlflowClient, parent_run_id: str) -> dict[str, Any]:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return {run.info.run_name: run for run in runs}


# --- the session's structure ----------------------------------------------------------------------------


def test_session_is_a_parent_with_full_clipped_and_baseline_children(
    session: Session, client: MlflowClient
) -> None:
    parent = client.get_run(session.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tags.TAG_ROLE] == "session"
    assert parent.data.tags[tags.TAG_AIRFLOW_RUN_ID] == AIRFLOW_RUN_ID
    assert parent.data.tags[tags.TAG_DATASET_VERSION] == DATASET_VERSION
    assert parent.data.tags[tags.TAG_GIT_COMMIT] == sessions.git_commit() != "unknown"

    logged = children(client, session.parent_run_id)
    assert set(logged) == {
        *(
            "full",
            "clipped",
            "cnn-ebv",
            "pdf",
            "baseline-knn-full",
            "baseline-knn-clipped",
            "baseline-nz-full",
        ),
        *("baseline-local-linear", "rail-dnf"),
    }
    described = {
        name: (run.data.tags["challenger"], run.data.tags[tags.TAG_ROLE], run.data.tags[tags.TAG_CLIPPING])
        for name, run in logged.items()
    }
    assert described == {
        "full": ("full", "cnn", "full"),
        "clipped": ("clipped", "cnn", "clipped"),
        "cnn-ebv": ("cnn-ebv", "cnn", "full"),
        "pdf": ("pdf", "cnn", "full"),
        "baseline-knn-full": ("baseline-knn-full", "baseline", "full"),
        "baseline-knn-clipped": ("baseline-knn-clipped", "baseline", "clipped"),
        "baseline-nz-full": ("baseline-nz-full", "baseline", "full"),
        "baseline-local-linear": ("baseline-local-linear", "baseline", "full"),
        "rail-dnf": ("rail-dnf", "baseline", "full"),
    }
    outputs = {name: run.data.tags[tags.TAG_OUTPUT] for name, run in logged.items()}
    assert {name for name, output in outputs.items() if output == "point"} == {"full", "clipped", "cnn-ebv"}
    assert all(run.info.status == "FINISHED" for run in logged.values())
    assert all(run.data.tags[tags.TAG_AIRFLOW_RUN_ID] == AIRFLOW_RUN_ID for run in logged.values())


def test_compare_url_lists_the_children_in_order(
    session: Session, client: MlflowClient, settings: Settings
) -> None:
    logged = children(client, session.parent_run_id)
    base, fragment = session.compare_url.split("#", 1)
    assert base == settings.mlflow_tracking_uri + "/"
    path, query = fragment.split("?", 1)
    assert path == "/compare-runs"
    params = urllib.parse.parse_qs(query)
    expected = [logged[name].info.run_id for name in challengers.DEFAULT_SESSION]
    assert json.loads(params["runs"][0]) == expected
    assert json.loads(params["experiments"][0]) == [logged["full"].info.experiment_id]
    assert params["workflowType"] == ["machine_learning"]
    assert "[" not in query and '"' not in query  # the JSON lists are percent-encoded


def test_cnn_child_logs_params_dataset_curves_artifacts_and_commit(
    session: Session, client: MlflowClient
) -> None:
    outcome = session.outcomes["full"]
    run = client.get_run(session.logged["full"].run_id)
    for key, value in outcome.trained.params.items():
        assert run.data.params[key] == str(value), key
    assert run.data.params["n_train"] == str(outcome.trained.n_train)
    assert run.data.params["epochs"] == "4" and run.data.params["clipping"] == "full"
    assert run.data.params["dataset_version"] == DATASET_VERSION

    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == f"astrospect-{DATASET_VERSION}"
    profile = json.loads(dataset_input.dataset.profile)
    assert profile == {"n_shards": 2, "shards": ["reader-0.h5", "reader-1.h5"]}
    assert {tag.key: tag.value for tag in dataset_input.tags}["mlflow.data.context"] == "training"

    history = outcome.trained.history
    for key, curve in (
        ("loss", "train_loss"),
        ("mae", "train_mae"),
        ("val_loss", "val_loss"),
        ("val_mae", "val_mae"),
    ):
        logged = sorted(client.get_metric_history(run.info.run_id, curve), key=lambda m: m.step)
        assert [m.step for m in logged] == list(range(1, len(history[key]) + 1))
        assert [m.value for m in logged] == history[key]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {f"plots/{plot.name}" for plot in outcome.plots}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "metrics")} == {
        "metrics/metric_table.json",
        "metrics/per_z_bin.json",
    }
    assert run.data.tags[tags.TAG_GIT_COMMIT] == sessions.git_commit()
    assert run.data.tags["mlflow.source.git.commit"] == sessions.git_commit().removesuffix("-dirty")


def test_logged_metrics_equal_the_evaluation(session: Session, client: MlflowClient) -> None:
    logged = children(client, session.parent_run_id)
    for challenger_name, outcome in session.outcomes.items():
        evaluation = outcome.evaluation
        run = logged[challenger_name]
        for name in METRIC_NAMES:
            expected = evaluation.metrics[name]
            assert (math.isnan(expected) and math.isnan(run.data.metrics[name])) or run.data.metrics[
                name
            ] == expected
        assert run.data.metrics["n_holdout"] == len(evaluation.z_true)

        table = json.loads(
            Path(client.download_artifacts(run.info.run_id, "metrics/metric_table.json")).read_text()
        )
        row = dict(zip(table["columns"], table["data"][0], strict=True))
        assert row["model"] == challenger_name and row["n"] == len(evaluation.z_true)
        assert row["clipping"] == outcome.challenger.clipping
        for name in METRIC_NAMES:
            # mlflow.log_table writes JSON through pandas at 10 decimals (error <= 5e-11); the metrics above are exact.
            assert row[name] == pytest.approx(evaluation.metrics[name], rel=0, abs=1e-10, nan_ok=True)

        per_bin = json.loads(
            Path(client.download_artifacts(run.info.run_id, "metrics/per_z_bin.json")).read_text()
        )
        logged_bins = pd.DataFrame(per_bin["data"], columns=per_bin["columns"])
        pd.testing.assert_frame_equal(logged_bins, evaluation.per_bin, check_dtype=False, rtol=1e-9)


def test_each_cnn_is_a_registered_version_with_signature_and_example(
    session: Session, client: MlflowClient, settings: Settings
) -> None:
    import mlflow

    versions = {
        v.version: v for v in client.search_model_versions(f"name = '{settings.registered_model_name}'")
    }
    registered = {name: logged for name, logged in session.logged.items() if logged.model_version}
    assert sorted(registered) == ["clipped", "cnn-ebv", "full", "pdf"]  # baselines are never registered
    for name, logged in registered.items():
        assert logged.model_version is not None and logged.model_uri is not None
        version = versions[logged.model_version]
        assert version.run_id == logged.run_id
        assert version.tags["challenger"] == name
        assert registry.get_version(settings, logged.model_version).challenger == name
        assert float(version.tags["holdout.sigma_mad"]) == pytest.approx(
            session.outcomes[name].evaluation.metrics["sigma_mad"], rel=1e-5
        )
        info = mlflow.models.get_model_info(logged.model_uri)
        inputs = info.signature.inputs.to_dict()
        assert list(inputs[0]["tensor-spec"]["shape"]) == [-1, 32, 32, 5]
        output_shape = list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"])
        assert output_shape == ([-1, 280] if name == "pdf" else [-1])  # the PDF output is declared
        if name in ("cnn-ebv", "pdf"):  # the photo-z trunk: cutouts and E(B-V), by name
            assert [(spec["name"], list(spec["tensor-spec"]["shape"])) for spec in inputs] == [
                ("cutouts", [-1, 32, 32, 5]),
                ("ebv", [-1]),
            ]
        else:
            assert len(inputs) == 1 and info.saved_input_example_info["type"] == "ndarray"
    # `challenger` points at the newest registered CNN (pdf was logged last).
    assert (
        client.get_registered_model(settings.registered_model_name).aliases["challenger"]
        == session.logged["pdf"].model_version
    )


def test_the_logged_cnn_ebv_predicts_from_cutouts_and_ebv_as_it_did_in_training(
    session: Session, shards: list[Path]
) -> None:
    import mlflow

    from astrospect.data.shards import read_shard
    from astrospect.models.predict import predict_redshift

    cutouts = read_shard(shards[0])
    images = cutouts.images[:8]
    ebv = np.linspace(0.0, 0.1, 8).astype(np.float32)
    logged = mlflow.pyfunc.load_model(session.logged["cnn-ebv"].model_uri)
    served = np.asarray(logged.predict({"cutouts": images, "ebv": ebv}), np.float32).reshape(-1)
    trained = session.outcomes["cnn-ebv"].trained.keras_model
    assert np.allclose(served, predict_redshift(trained, images, ebv), atol=1e-5)


def test_pdf_challengers_log_the_pdf_metrics_and_figures(session: Session, client: MlflowClient) -> None:
    from astrospect.pdf.metrics import PDF_METRIC_NAMES

    logged = children(client, session.parent_run_id)
    for name in ("pdf", "baseline-knn-full", "baseline-nz-full"):
        evaluation = session.outcomes[name].evaluation
        run = logged[name]
        for metric in PDF_METRIC_NAMES:
            assert run.data.metrics[metric] == evaluation.pdf_metrics[metric], (name, metric)
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/pit_histogram.png", "plots/coverage_curve.png", "plots/example_pdfs.png"} <= plots
    pdf_run = logged["pdf"]
    assert "uncalibrated_coverage_68" in pdf_run.data.metrics  # the holdout before calibration, too
    assert {"temperature", "shift"} <= set(pdf_run.data.metrics)
    assert "crps" not in logged["full"].data.metrics  # a point model has no PDF metrics


def test_session_for_dataset_finds_the_trained_version(session: Session, settings: Settings) -> None:
    trained = challengers.for_session()
    assert sessions.session_for_dataset(settings, DATASET_VERSION, trained) == session.parent_run_id
    assert sessions.session_for_dataset(settings, "never-trained", trained) is None


def test_a_challenger_added_to_the_session_makes_the_dataset_untrained(
    session: Session, settings: Settings
) -> None:
    extra = challengers.register(
        challengers.Challenger("extra-not-trained", "astrospect.models.train:fit_seed_cnn", "full")
    )
    try:
        wanted = (*challengers.for_session(), extra)
        assert sessions.session_for_dataset(settings, DATASET_VERSION, wanted) is None
    finally:
        challengers.unregister(extra.name)


def test_retried_tasks_reuse_the_session_and_runs(
    session: Session, client: MlflowClient, settings: Settings, shards: list[Path]
) -> None:
    n_versions = len(client.search_model_versions(f"name = '{settings.registered_model_name}'"))
    for challenger in challengers.for_session():
        again = runs.train_once(settings, session.parent_run_id, challenger, must_not_train)
        assert again == dataclasses.replace(session.logged[challenger.name], reused=True)
    assert len(children(client, session.parent_run_id)) == len(challengers.DEFAULT_SESSION)
    assert len(client.search_model_versions(f"name = '{settings.registered_model_name}'")) == n_versions

    assert (
        sessions.start_session(settings, DATASET_VERSION, shards, airflow_run_id=AIRFLOW_RUN_ID)
        == session.parent_run_id
    )
    sessions.end_session(session.parent_run_id, settings)  # the reuse reopened it; close it again


def test_a_child_left_running_by_a_crash_is_failed_kept_and_logged_afresh(
    settings: Settings, shards: list[Path], tmp_path: Path
) -> None:
    isolated = settings.replace(registered_model_name="retry-test", experiment_name="retry-test")
    client = client_for(isolated)
    parent = sessions.start_session(isolated, "retry-v1", shards)
    experiment_id = client.get_run(parent).info.experiment_id
    crashed = client.create_run(
        experiment_id,
        run_name="clipped",
        tags={"mlflow.parentRunId": parent, **tags.challenger_tags(challengers.get("clipped"))},
    )
    client.log_metric(crashed.info.run_id, "val_loss", 0.5, step=1)  # the epoch it finished before dying
    logged = log_reader(isolated, parent, NOISY_BAND, "clipped", shards)
    assert logged.run_id != crashed.info.run_id and not logged.reused
    kept = client.get_run(crashed.info.run_id)
    assert kept.info.status == "FAILED" and kept.data.metrics["val_loss"] == 0.5
    assert kept.data.tags[tags.TAG_SUPERSEDED_BY] == logged.run_id
    assert "left RUNNING" in kept.data.tags[tags.TAG_ERROR]
    assert client.get_run(logged.run_id).info.status == "FINISHED"
    # Marked once: a later retry of the finished challenger changes nothing on it.
    assert log_reader(isolated, parent, NOISY_BAND, "clipped", shards).reused
    assert client.get_run(crashed.info.run_id).data.tags == kept.data.tags


def test_parallel_tasks_log_into_one_session_from_separate_processes(
    settings: Settings, shards: list[Path], tmp_path: Path
) -> None:
    """The DAG trains full and clipped in parallel tasks: here a second process logs `clipped` at the same
    moment as this one logs `full`, into one parent run and one registered model."""
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    isolated = settings.replace(registered_model_name="parallel-test", experiment_name="parallel-test")
    parent = sessions.start_session(isolated, "parallel-v1", shards)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        other = pool.submit(
            log_reader_in_process,
            settings.mlflow_tracking_uri,
            str(tmp_path),
            "parallel-test",
            parent,
            "clipped",
            OFFSET_BAND,
            [str(s) for s in shards],
        )
        while not (tmp_path / "ready").exists():
            assert not other.done(), other.exception()
            time.sleep(0.05)
        (tmp_path / "go").touch()
        here = log_reader(isolated, parent, NOISY_BAND, "full", shards)
        clipped_run, clipped_version = other.result(timeout=300)
    sessions.end_session(parent, isolated)

    logged = children(client_for(isolated), parent)
    assert {name: run.info.run_id for name, run in logged.items()} == {
        "full": here.run_id,
        "clipped": clipped_run,
    }
    assert sorted([here.model_version, clipped_version]) == ["1", "2"]
    assert runs.train_once(isolated, parent, challengers.get("clipped"), must_not_train) == runs.LoggedRun(
        clipped_run, "clipped", clipped_version, f"models:/parallel-test/{clipped_version}", reused=True
    )


# --- promotion ------------------------------------------------------------------------------------------


def test_first_promotion_makes_the_best_challenger_champion_and_it_loads_back(
    session: Session, client: MlflowClient, settings: Settings, shards: list[Path], holdout: RowSelection
) -> None:
    from astrospect.data.shards import read_shard
    from astrospect.models.predict import predict_redshift

    result = promote_session(settings, session.parent_run_id, holdout)

    by_version = {
        logged.model_version: name for name, logged in session.logged.items() if logged.model_version
    }
    sigma = {
        v: session.outcomes[variant].evaluation.metrics["sigma_mad"] for v, variant in by_version.items()
    }
    best = min(sigma, key=lambda v: (sigma[v], int(v)))
    assert (result.champion_before, result.champion_after, result.changed) == (None, best, True)
    assert result.decision.promote and result.decision.reason.startswith("first model")
    # Re-scored on the holdout, each version reproduces the metrics logged at training time.
    for candidate in result.candidates:
        evaluation = session.outcomes[by_version[candidate.version]].evaluation
        logged_metrics = {**evaluation.metrics, **evaluation.pdf_metrics}
        assert candidate.metrics == pytest.approx(logged_metrics, rel=1e-6, nan_ok=True)
    assert client.get_registered_model(settings.registered_model_name).aliases["champion"] == best

    (artifact,) = client.list_artifacts(session.parent_run_id, "promotion")
    assert artifact.path == result.decision_artifact
    logged = json.loads(Path(client.download_artifacts(session.parent_run_id, artifact.path)).read_text())
    assert logged["decision"]["promote"] is True and logged["champion_version_after"] == best
    assert logged["decision"]["challenger"]["sigma_mad"] == pytest.approx(sigma[best], rel=1e-6)
    assert (
        client.get_model_version(settings.registered_model_name, best).tags["promotion.decision"]
        == "promoted"
    )

    champion = registry.load_model(settings, "champion")
    images = read_shard(shards[0]).images[:64]
    before_logging = session.outcomes[by_version[best]].trained.keras_model
    np.testing.assert_allclose(
        predict_redshift(champion, images), predict_redshift(before_logging, images), rtol=1e-6
    )


def test_promoting_again_changes_nothing(
    session: Session, client: MlflowClient, settings: Settings, holdout: RowSelection
) -> None:
    name = settings.registered_model_name
    aliases = client.get_registered_model(name).aliases
    champion_tags = client.get_model_version(name, aliases["champion"]).tags
    artifacts = client.list_artifacts(session.parent_run_id, "promotion")

    result = promote_session(settings, session.parent_run_id, holdout)

    assert not result.changed and result.decision_artifact is None
    assert result.decision.reason == f"v{aliases['champion']} is already the champion"
    assert client.get_registered_model(name).aliases == aliases
    assert client.get_model_version(name, aliases["champion"]).tags == champion_tags
    assert [a.path for a in client.list_artifacts(session.parent_run_id, "promotion")] == [
        a.path for a in artifacts
    ]


def test_promote_command_reports_the_decision(
    session: Session,
    client: MlflowClient,
    settings: Settings,
    shards: list[Path],
    holdout: RowSelection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from astrospect.cli import app

    for key, value in cli_environment(settings).items():
        monkeypatch.setenv(key, value)
    # Promote once here (idempotent), so this test holds alone and in any order: the command repeats it.
    promote_session(settings, session.parent_run_id, holdout)
    champion = client.get_registered_model(settings.registered_model_name).aliases["champion"]
    result = CliRunner().invoke(
        app, ["promote", "--session", session.parent_run_id, "--data", str(shards[0].parent)]
    )
    assert result.exit_code == 0, result.output
    assert f"v{champion} not promoted" in result.output and "is already the champion" in result.output
    assert result.output.strip().endswith(f"champion: v{champion}")


def cli_environment(settings: Settings) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "ASTROSPECT_MODEL_NAME": settings.registered_model_name,
        "ASTROSPECT_EXPERIMENT": settings.experiment_name,
        "ASTROSPECT_HOME": str(settings.home),
    }


def test_policy_branches_on_a_real_registry(
    settings: Settings, shards: list[Path], holdout: RowSelection
) -> None:
    """Each session registers one reader; promotion must follow the policy at every step."""
    chain = settings.replace(registered_model_name="policy-chain", experiment_name="policy-chain")
    client = client_for(chain)
    steps = [  # (reader band, promoted?, reason fragment, champion band afterwards)
        (NOISY_BAND, True, "first model", NOISY_BAND),
        (OUTLIER_BAND, False, "catastrophic_outlier_frac grows", NOISY_BAND),
        (OFFSET_BAND, False, "|bias| grows", NOISY_BAND),
        (EXACT_BAND, True, "sigma_mad improves", EXACT_BAND),
        (NOISY_BAND, False, "does not beat", EXACT_BAND),
        (EXACT_BAND, False, "tie", EXACT_BAND),
    ]
    band_of_version: dict[str, int] = {}
    for k, (band, promoted, reason, champion_band) in enumerate(steps):
        parent = sessions.start_session(chain, f"chain-{k}", shards)
        logged = log_reader(chain, parent, band, "full", shards)
        assert logged.model_version is not None
        band_of_version[logged.model_version] = band
        sessions.end_session(parent, chain)

        outcome = promote_session(chain, parent, holdout)

        assert (outcome.decision.promote, outcome.changed) == (promoted, promoted), (
            k,
            outcome.decision.reason,
        )
        assert reason in outcome.decision.reason, (k, outcome.decision.reason)
        champion = client.get_registered_model("policy-chain").aliases["champion"]
        assert band_of_version[champion] == champion_band, k
        decision = client.get_model_version("policy-chain", logged.model_version).tags["promotion.decision"]
        assert decision == ("promoted" if promoted else "rejected")


# --- errors before training -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("127.0.0.1:5000", "expected an http:// or https:// server URL"),
        ("file:///tmp/mlruns", "expected an http:// or https:// server URL"),
        ("http://", "no host name"),
        ("http://127.0.0.1:99999", "malformed port"),
    ],
)
def test_malformed_tracking_uri_is_a_clear_error(uri: str, reason: str) -> None:
    with pytest.raises(TrackingServerError, match=reason) as error:
        check_tracking_server(uri)
    assert repr(uri) in str(error.value)


@pytest.mark.timeout(60)
def test_unreachable_server_fails_before_a_session_starts(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TrackingServerError, match="unreachable"):
        sessions.start_session(settings_for(tmp_path, uri), "v1", [tmp_path / "a.h5"])


@pytest.mark.timeout(60)
def test_a_web_server_that_is_not_mlflow_is_refused(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(TrackingServerError, match="answered HTTP 404"):
            check_tracking_server(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


# --- the report -----------------------------------------------------------------------------------------


def test_report_command_prints_the_latest_comparison_beside_the_seed(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from astrospect.cli import app

    for key, value in cli_environment(settings).items():
        monkeypatch.setenv(key, value)
    # The default table fits a 100-column terminal: one line per model, with what decides the night.
    narrow = CliRunner().invoke(app, ["report"], env={"COLUMNS": "100"})
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.output.splitlines() if not line.startswith("compare view")) <= 100
    for name, outcome in session.outcomes.items():
        (line,) = [line for line in narrow.output.splitlines() if line.startswith(f"{name} ")]
        assert f"{outcome.evaluation.metrics['sigma_mad']:.4f}" in line
    # For scripts: every column, as JSON.
    as_json = CliRunner().invoke(app, ["report", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    by_model = {row["model"]: row for row in json.loads(as_json.stdout)["rows"]}
    for name, outcome in session.outcomes.items():
        assert by_model[name]["mae"] == pytest.approx(outcome.evaluation.metrics["mae"], rel=1e-9)

    # --wide: every metric, the point table first, then (for the challengers that give PDFs) the PDF table.
    result = CliRunner().invoke(app, ["report", "--wide"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows: dict[str, list[str]] = {}
    for line in result.output.splitlines():
        if line.count("│") > 2:
            rows.setdefault(line.split("│")[1].strip(), []).append(line)
    for name, outcome in session.outcomes.items():
        evaluation = outcome.evaluation
        point_row = rows[name][0]
        assert f"{evaluation.metrics['mae']:.4f}" in point_row
        assert f"{evaluation.metrics['sigma_mad']:.4f}" in point_row
        assert "ours: simulated" in point_row
        if evaluation.pdf_metrics:
            (pdf_row,) = rows[name][1:]
            assert f"{evaluation.pdf_metrics['crps']:.4f}" in pdf_row
        else:
            assert len(rows[name]) == 1
    assert "0.0304" in rows["seed CNN full"][0] and "real SDSS" in rows["seed CNN full"][0]
    assert "0.0556" in rows["seed CNN clipped"][0]
    assert session.compare_url in result.output.replace("\n", "")
