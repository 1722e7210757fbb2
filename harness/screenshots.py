"""The docs' screenshots, taken from a real run: ``make screenshots`` (``python -m harness.screenshots``).

It makes its own small night under ``data/screenshots`` (its own ``ASTROSPECT_HOME``, MLflow server and
Airflow database, so ``data/`` of ``make run`` is never touched): ``astrospect synth`` of a few thousand
galaxies plus one shard whose z fluxes are 10x too bright (the gate quarantines it), the real nightly DAG
through ``airflow dags test`` as ``make run`` runs it, then a second, smaller night observed in worse seeing
so the drift step has a champion to compare with. Then headless Chromium (Debian's, through Playwright)
opens five pages and writes one PNG each into ``docs/images``.

The night is kept and reused (a marker file per finished night); ``--fresh`` (``make screenshots FRESH=1``)
deletes it and makes it again. Each picture is one function; each waits for the content it shows (not a
fixed sleep) and fails loudly when the page shows something else.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.browser import MLFLOW_METRIC_ROW_JS, PAGE_TIMEOUT_MS, chromium
from harness.corpus import write_mutant
from harness.ports import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

    from astrospect.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = PROJECT_ROOT / ".venv" / "bin"
SERVER_SCRIPT = PROJECT_ROOT / "mlflow" / "server.sh"
DAG_ID = "astrospect_nightly"
NIGHTS = 2  # the first makes a champion; the second drifts from it (worse seeing)
VIEWPORT = {"width": 1400, "height": 900}  # every picture's size in pixels
COMPARE_SCALE = 0.65  # the compare view is laid out 2150 px wide, so the default session's nine runs fit
REGISTRY_SCALE = 0.8  # the registry page is laid out 1750 px wide, so two versions' rows fit
# The bad shard: z fluxes 10x too bright, a calibration shift the gate's summary suite quarantines.
BAD_SHARD_CASE = "calibration-shift.h5"
BAD_SHARD_NAME = "sim-s1-z-calibration-shift.h5"
# The docs' pictures, by the file name the docs reference, in the order they are taken.
PICTURES = (
    "mlflow-compare.png",
    "mlflow-registry.png",
    "airflow-grid.png",
    "drift-report.png",
    "gx-quarantine.png",
)
DATA_DOCS_BOOTSTRAP_CDN = "/bootstrap/4.3.1/css/bootstrap.min.css"
# Bootstrap 5.3 as the locked environment ships it (in flower, Celery's monitor): close enough to 4.3 for
# Data Docs' cards and tables; the shim below restores the 4.x classes the page uses and stands in for the
# Font Awesome status icons, and hides GE's newsletter footer (it floats over the page).
DATA_DOCS_SHIM_CSS = """
.badge-secondary { color: #fff; background-color: #6c757d; }
.fas { font-style: normal; font-weight: bold; }
.fas.fa-times::before { content: "\\2717"; }
.fas.fa-check-circle::before { content: "\\2713"; }
footer { display: none; }
.navbar.sticky-top { position: static; }
"""
# Scroll the page so that the innermost element starting with the text is at the top (a little margin).
SCROLL_TO_TEXT_JS = """(text) => {
  const all = [...document.querySelectorAll('body *')].filter(e => e.textContent.trim().startsWith(text));
  const node = all[all.length - 1];
  if (!node) throw new Error('no element starts with ' + text);
  window.scrollTo({top: node.getBoundingClientRect().top + window.scrollY - 12, behavior: 'instant'});
}"""
# When the node's table row does not end inside the window, scroll (MLflow's content pane, not the window)
# so the row starts at the top.
SCROLL_ROW_INTO_VIEW_JS = """(node) => {
  const row = node.closest('tr, [role="row"]') || node;
  const box = row.getBoundingClientRect();
  if (box.bottom > window.innerHeight) row.scrollIntoView({block: 'start', behavior: 'instant'});
}"""
# The DAG runs the Airflow page links to (the grid's run bars), counted once each.
DISTINCT_RUN_LINKS_JS = f"""() => new Set([...document.querySelectorAll('a[href*="/dags/{DAG_ID}/runs/"]')]
  .map(a => a.getAttribute('href').split('/runs/')[1].split('/')[0])).size"""
AIRFLOW_START_TIMEOUT_S = 240  # the api-server's first start on a loaded 2-core box


@dataclass(frozen=True)
class NightPlan:
    """What the screenshot night holds: small, so it takes minutes, but the real DAG end to end."""

    home: Path
    n_galaxies: int = 4000  # the first night
    n_second_night: int = 1500  # the second night, observed in worse seeing: the drift report's subject
    second_night_seeing: float = 1.8  # median r-band PSF FWHM in arcsec (SDSS's is 1.40)
    epochs: int = 4
    challengers: str = (
        "full,clipped,cnn-ebv,pdf,baseline-knn-full,baseline-knn-clipped,baseline-nz-full,"
        "baseline-local-linear,rail-dnf"  # make run's set: the registry's default session
    )
    lrg_fraction: float = 0.05

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def port_file(self) -> Path:
        return self.home / "mlflow.port"


def mlflow_port(plan: NightPlan) -> int:
    """The screenshot night's MLflow port: chosen free once, then kept, so a rerun finds its server."""
    if plan.port_file.exists():
        return int(plan.port_file.read_text().strip())
    plan.home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    plan.port_file.write_text(f"{port}\n")
    return port


def night_env(plan: NightPlan) -> dict[str, str]:
    """The environment of every command of the night: its own home, MLflow server and Airflow database."""
    port = mlflow_port(plan)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ASTROSPECT_", "AIRFLOW", "MLFLOW_", "BENTOML_"))
    }
    env.update(
        {
            "ASTROSPECT_HOME": str(plan.home),
            "ASTROSPECT_CHALLENGERS": plan.challengers,
            "ASTROSPECT_EPOCHS": str(plan.epochs),
            "MLFLOW_PORT": str(port),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
            "AIRFLOW_HOME": str(plan.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
    )
    return env


def _run(command: list[str], env: dict[str, str], log: Path) -> None:
    """Run one step of the night, its output appended to ``log``; a failure names the step and the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"screenshots: {' '.join(command[:4])} ... (log {log})", flush=True)
    with log.open("a") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit {done.returncode}: see {log}")
    print(f"screenshots:   done in {time.monotonic() - started:.0f} s", flush=True)


def write_bad_shard(good: Path, out: Path) -> Path:
    """A copy of a good shard under new objids with z fluxes 10x too bright (harness.corpus's case)."""
    return write_mutant(good, BAD_SHARD_CASE, out)


def mlflow_up(plan: NightPlan) -> str:
    """Start (or find) the night's MLflow server; its URL."""
    env = night_env(plan)
    _run([str(SERVER_SCRIPT), "up"], env, plan.home / "logs" / "mlflow-up.log")
    return env["MLFLOW_TRACKING_URI"]


def mlflow_down(plan: NightPlan) -> None:
    if plan.home.exists():
        _run([str(SERVER_SCRIPT), "down"], night_env(plan), plan.home / "logs" / "mlflow-down.log")


def run_night(plan: NightPlan, number: int) -> None:
    """One night of the real DAG, as ``make run`` runs it; a marker file says it finished."""
    marker = plan.home / f"night-{number}.done"
    if marker.exists():
        print(f"screenshots: night {number} already done ({marker})", flush=True)
        return
    env = night_env(plan)
    log = plan.home / "logs" / f"night-{number}.log"
    synth = [
        str(BIN / "astrospect"),
        "synth",
        "--out",
        str(plan.landing),
        "--lrg-fraction",
        str(plan.lrg_fraction),
    ]
    if number == 1:
        if not any(plan.landing.glob("sim-s1-*.h5")):
            _run([*synth, "--n", str(plan.n_galaxies), "--seed", "1"], env, log)
        bad = plan.landing / BAD_SHARD_NAME
        if not bad.exists():
            write_bad_shard(sorted(plan.landing.glob("sim-s1-0*.h5"))[0], bad)
    else:
        if not any(plan.landing.glob(f"sim-s{number}-*.h5")):
            seeing = ["--seeing", str(plan.second_night_seeing)]
            _run([*synth, "--n", str(plan.n_second_night), "--seed", str(number), *seeing], env, log)
    plan.airflow_home.mkdir(parents=True, exist_ok=True)
    _run([str(BIN / "airflow"), "db", "migrate"], env, log)
    mlflow_up(plan)
    conf = json.dumps({"epochs": plan.epochs})
    _run([str(BIN / "airflow"), "dags", "test", DAG_ID, "--conf", conf], env, log)
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def make_nights(plan: NightPlan, fresh: bool) -> None:
    if fresh and plan.home.exists():
        mlflow_down(plan)
        shutil.rmtree(plan.home)
    for number in range(1, NIGHTS + 1):
        run_night(plan, number)


# ---- the pictures ----


def new_page(browser: Browser, scale: float = 1.0) -> Page:
    """A page whose screenshot is :data:`VIEWPORT`'s size; ``scale`` < 1 lays it out on a wider window,
    drawn smaller (for the compare view's nine columns)."""
    window = {name: round(size / scale) for name, size in VIEWPORT.items()}
    page = browser.new_page(viewport=window, device_scale_factor=scale)  # type: ignore[arg-type]
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def close_mlflow_assistant(page: Page) -> None:
    """The assistant panel opens itself on a first visit and hides part of the page."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()


def shoot_mlflow_compare(browser: Browser, settings: Settings, out: Path) -> Path:
    """The compare view of the latest night's runs: every run's name and the first metric rows.

    Laid out 2150 px wide and drawn at 0.65 so all nine columns fit in 1400 px (at 0.8, MLflow draws only
    eight of them); the plots and the parameters are folded so the names and the metrics share the picture.
    The metrics grid is left unscrolled: MLflow 3.17 scrolls its values without their labels."""
    from astrospect.tracking import sessions

    session = sessions.latest_session(settings)
    if session is None:
        raise LookupError(f"no finished session in MLflow at {settings.mlflow_tracking_uri}")
    n_runs = len(sessions.session_children(settings, session.run_id))
    page = new_page(browser, scale=COMPARE_SCALE)
    page.goto(sessions.compare_url(session.run_id, settings))
    run_name_row = page.locator("tr", has=page.locator("th", has_text="Run Name:"))
    run_name_row.locator("td").nth(n_runs - 1).wait_for()
    close_mlflow_assistant(page)
    page.get_by_role("button", name="Toggle sidebar").click()
    for section in ("Visualizations", "Parameters"):
        page.get_by_text(section, exact=True).first.click()
    page.wait_for_function(f"() => ({MLFLOW_METRIC_ROW_JS})('bias')?.length === {n_runs}")
    page.get_by_text("Run details", exact=True).first.evaluate(
        "node => node.scrollIntoView({behavior: 'instant'})"
    )
    return _save(page, out / "mlflow-compare.png")


def shoot_mlflow_registry(browser: Browser, settings: Settings, out: Path) -> Path:
    """The registered model's page: its newest versions, their tags, and the champion and challenger
    aliases (drawn at 0.8, so two versions' rows fit; when the champion's row is further down, the page is
    scrolled so it starts at the top)."""
    from astrospect.tracking.registry import CHALLENGER_ALIAS, CHAMPION_ALIAS
    from astrospect.tracking.sessions import UI_WORKFLOW_QUERY

    name = urllib.parse.quote(settings.registered_model_name, safe="")
    page = new_page(browser, scale=REGISTRY_SCALE)
    page.goto(f"{settings.mlflow_ui_url}/#/models/{name}?{UI_WORKFLOW_QUERY}")
    for alias in (CHALLENGER_ALIAS, CHAMPION_ALIAS):
        page.get_by_text(f"@ {alias}", exact=True).first.wait_for()
    close_mlflow_assistant(page)
    page.get_by_text(f"@ {CHAMPION_ALIAS}", exact=True).first.evaluate(SCROLL_ROW_INTO_VIEW_JS)
    return _save(page, out / "mlflow-registry.png")


def shoot_airflow_grid(browser: Browser, plan: NightPlan, out: Path) -> Path:
    """Airflow 3's DAG page: the grid of both screenshot nights (one column of task squares per run) beside
    the DAG's overview."""
    with airflow_api_server(plan) as url:
        page = new_page(browser)
        page.goto(f"{url}/dags/{DAG_ID}")
        page.locator('[data-testid="task-deploy"]').first.wait_for()
        page.wait_for_function(f"() => ({DISTINCT_RUN_LINKS_JS})() >= {NIGHTS}")
        # Each run's square of its last task, then the overview's cards, are drawn once their queries answer.
        squares = page.locator('a[data-testid^="grid-"][data-testid$="-deploy"]')
        squares.nth(NIGHTS - 1).wait_for()
        for card in ("Failed Tasks", "Failed Runs", "Dag Runs"):
            page.get_by_text(card).first.wait_for()
        return _save(page, out / "airflow-grid.png")


def shoot_drift_report(browser: Browser, settings: Settings, out: Path) -> Path:
    """The second night's drift report: the verdict, the per-feature table, the distributions."""
    reports = sorted((settings.reports_dir / "drift").glob("*/drift.html"), key=lambda p: p.stat().st_mtime)
    if not reports:
        raise FileNotFoundError(f"no drift report under {settings.reports_dir / 'drift'}: did night 2 run?")
    page = new_page(browser)
    page.goto(reports[-1].as_uri())
    page.locator("tbody tr").first.wait_for()
    return _save(page, out / "drift-report.png")


def shoot_quarantine(browser: Browser, settings: Settings, out: Path) -> Path:
    """The quarantined shard's report: the gate's verdict (the zero point it points to, the release command)
    above GE's Data Docs validation page, framed from the verdict down."""
    reports = sorted(settings.quarantine_dir.glob("*.report.html"))
    if not reports:
        raise FileNotFoundError(
            f"no quarantine report in {settings.quarantine_dir}: was {BAD_SHARD_NAME} accepted?"
        )
    page = new_page(browser)
    page.route("**/*", _data_docs_offline)
    page.goto(reports[0].as_uri())
    page.add_style_tag(content=DATA_DOCS_SHIM_CSS)
    page.locator("text=Expectation Validation Result").first.wait_for()
    page.evaluate(SCROLL_TO_TEXT_JS, "Colour calibration failed")
    return _save(page, out / "gx-quarantine.png")


def local_bootstrap_css() -> Path | None:
    """flower's copy of Bootstrap's stylesheet, if flower is installed (it is in the locked environment)."""
    spec = importlib.util.find_spec("flower")
    if spec is None or spec.origin is None:
        return None
    css = Path(spec.origin).parent / "static" / "css" / "bootstrap.min.css"
    return css if css.exists() else None


def _data_docs_offline(route: Route) -> None:
    """GE's Data Docs load Bootstrap 4.3 and icons from CDNs that this machine (and CI) cannot reach: serve
    the locked environment's Bootstrap in place of the CDN's, refuse the rest at once (no waiting on DNS)."""
    url = route.request.url
    if url.startswith("file:"):
        route.continue_()
    elif url.endswith(DATA_DOCS_BOOTSTRAP_CDN) and (local := local_bootstrap_css()) is not None:
        route.fulfill(path=local, content_type="text/css")
    else:
        route.abort()


def _save(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path))
    page.close()
    return path


@contextmanager
def airflow_api_server(plan: NightPlan) -> Iterator[str]:
    """``airflow api-server`` on a free loopback port over the night's SQLite database, no login (as
    ``make airflow-up``); stopped, its whole process group, on leaving."""
    port = free_port()
    env = {
        **night_env(plan),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    log = plan.home / "logs" / "airflow-api-server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("a") as out:
        server = subprocess.Popen(
            [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(f"{url}/api/v2/monitor/health", server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + AIRFLOW_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {server.returncode}: see {log}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise TimeoutError(f"airflow api-server did not answer {url} in {AIRFLOW_START_TIMEOUT_S} s: see {log}")


def take_pictures(plan: NightPlan, out: Path) -> list[Path]:
    """The five pictures of the night, each written to ``out``."""
    from astrospect.settings import load_settings

    mlflow_up(plan)
    os.environ.update(night_env(plan))  # load_settings reads the night's home and MLflow server
    settings = load_settings()
    with chromium() as browser:
        pictures = [
            shoot_mlflow_compare(browser, settings, out),
            shoot_mlflow_registry(browser, settings, out),
            shoot_airflow_grid(browser, plan, out),
            shoot_drift_report(browser, settings, out),
            shoot_quarantine(browser, settings, out),
        ]
    if tuple(path.name for path in pictures) != PICTURES:  # the names the docs (and the test) rely on
        raise RuntimeError(f"took {[path.name for path in pictures]}, the docs reference {list(PICTURES)}")
    return pictures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / "data" / "screenshots")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "images")
    parser.add_argument("--fresh", action="store_true", help="delete the screenshot night and make it again")
    parser.add_argument("--night-only", action="store_true", help="make the night, take no pictures")
    parser.add_argument("--epochs", type=int, default=NightPlan.epochs)
    parser.add_argument("--n", type=int, default=NightPlan.n_galaxies)
    args = parser.parse_args(argv)
    plan = NightPlan(home=args.home.resolve(), n_galaxies=args.n, epochs=args.epochs)
    try:
        started = time.monotonic()
        make_nights(plan, args.fresh)
        print(f"screenshots: the nights took {time.monotonic() - started:.0f} s", flush=True)
        if args.night_only:
            return 0
        args.out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for path in take_pictures(plan, args.out):
            print(f"screenshots: {path} ({path.stat().st_size / 1024:.0f} kB)", flush=True)
        print(f"screenshots: the pictures took {time.monotonic() - started:.0f} s", flush=True)
    finally:
        mlflow_down(plan)  # the night's server is not left running; the next run starts it again
    return 0


if __name__ == "__main__":
    sys.exit(main())
