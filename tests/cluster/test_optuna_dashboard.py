"""optuna-dashboard on a sweep's study file, opened in headless Chromium.

The sweep is the sweep_scale benchmark's one-sweep mode: the real launcher plan, Tuner,
results recorder and Optuna searcher (temperature space) on local Ray, with a trial that
reports synthetic metrics in milliseconds (a Train run per trial would add minutes and
nothing the dashboard sees). The dashboard must list that sweep's study and show each of
its trials with the temperature the results table says it was trained with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request

import pytest
from cdp_browser import visit
from fixtures_ray import ARTIFACTS, ROOT, free_ports, wait_for

from medflip.results import table as results
from medflip.sweep import journal

pytestmark = pytest.mark.slow
TRIALS = 6


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    storage = tmp_path_factory.mktemp("optuna-sweep")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sweep_scale.py"), "--one", f"optuna:{TRIALS}"]
    cmd += ["--storage", str(storage), "--reports", "3", "--concurrency", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return storage / f"scale-optuna-{TRIALS}"


@pytest.fixture
def dashboard(sweep):
    exe = shutil.which("optuna-dashboard") or str(ROOT / ".venv" / "bin" / "optuna-dashboard")
    (port,) = free_ports(1)
    study = journal.study_path(str(sweep))
    proc = subprocess.Popen(
        [exe, study, "--port", str(port), "--host", "127.0.0.1", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{url}/api/studies", timeout=5) as r:
                return json.load(r)
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            return None

    yield url, wait_for(up, 60, "optuna-dashboard to answer")
    proc.terminate()
    proc.wait(10)


def test_the_dashboard_shows_the_sweeps_trials(sweep, dashboard, system_tools):
    url, studies = dashboard
    (study,) = studies["study_summaries"]
    assert study["study_name"] == sweep.name  # the study is named by the experiment
    final = results.final_rows(results.load(sweep))
    taus = sorted(final["loss.temperature"])
    assert len(final) == TRIALS and set(final.status) == {"completed"}
    sid = study["study_id"]

    async def steps(page):
        await page.goto(f"{url}/dashboard/studies/{sid}/trials")
        listed = await page.wait_text([f"{TRIALS} Trials", f"Trial {TRIALS - 1}"])
        await page.screenshot(ARTIFACTS / "optuna-dashboard-trials.png")
        await page.goto(f"{url}/dashboard/studies/{sid}")
        history = await page.wait_text(["History", "Best Trial", "loss.temperature"])
        await page.screenshot(ARTIFACTS / "optuna-dashboard.png")
        return listed, history

    listed, history = visit(steps)
    assert f"{TRIALS} Trials" in listed, listed[:2000]
    assert listed.count("Complete") >= TRIALS  # every trial told back to Optuna
    # Trial 0's detail pane: the temperature the results table has for one of the trials.
    shown = float(listed.split("loss.temperature", 1)[1].split()[0])
    assert min(abs(shown - t) for t in taus) < 1e-9, (shown, taus)
    assert "Hyperparameter Importance" in history
