"""One smoke sweep on a cluster-up head, watched three ways: the dashboard in headless
Chromium, Prometheus scraping Ray's metrics port, and a search of every file the sweep
wrote for report text. The sweep runs once (module fixture); all tests share it."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cdp_browser import visit
from fixtures_ray import ARTIFACTS, ROOT, Sweep, free_ports, wait_for
from leakscan import report_needles, scan

from medflip import variants
from medflip.data.dataset import train_corpus
from medflip.data.eval_sets import build_eval_sets
from medflip.data.prompts import prompt_corpus
from medflip.results import table as results

pytestmark = pytest.mark.slow

NAME = "cluster-smoke"
# Long enough that Prometheus (a scrape every 5 s) scrapes each trial more than once while
# it runs, even on a quiet machine where tiny steps are fast (120 steps once gave one scrape
# of one trial); 10 reports a trial (tiny's own cadence is 2), so the step gauge it scrapes
# changes between scrapes. One CPU a trial: the two trials run at once, as `make demo`'s do
# (this module: 105 s instead of 128 s one trial after the other, 2-core EPYC, load ~2.5).
SMOKE_ARGS = ["--smoke-test", "--cpus-per-worker", "1"]
SMOKE_ARGS += ["--set", "optim.max_steps=300", "--set", "eval.every_share=0.1"]
GAUGES = ("step", "loss", "throughput", "zeroshot_acc", "device_hours")
SD_FILE = "/tmp/ray/prom_metrics_service_discovery.json"


@pytest.fixture(scope="module")
def prometheus(system_tools, ray_cluster, tmp_path_factory):
    """Debian's Prometheus on loopback with README's scrape config (deploy/prometheus.yml),
    its discovery path pointed at this cluster's temp dir instead of /tmp/ray."""
    text = (ROOT / "deploy" / "prometheus.yml").read_text()
    assert SD_FILE in text, "deploy/prometheus.yml no longer reads Ray's discovery file"
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(text.replace("/tmp/ray/", f"{ray_cluster.root}/"))
    port = free_ports(1)[0]
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            system_tools["prometheus"],
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(url + "/-/ready") is not None, 60, "Prometheus to be ready")
        yield {"url": url, "data": work / "data", "log": work / "prometheus.log"}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body
    except (urllib.error.URLError, OSError):
        return None


@pytest.fixture(scope="module")
def smoke_sweep(ray_cluster, prometheus, tmp_path_factory):
    """`sweeps/mask_ratio.py --address auto --smoke-test` against the head (runs in the
    background; tests wait for what they need)."""
    work = tmp_path_factory.mktemp("smoke")
    sweep = Sweep(ray_cluster, "mask_ratio.py", SMOKE_ARGS, work / "runs", NAME, work / "sweep.log")
    yield sweep
    sweep.kill()


@pytest.fixture(scope="module")
def finished(smoke_sweep):
    """The smoke sweep, run to its end (exit code 0 checked)."""
    rc = smoke_sweep.wait(600)
    assert rc == 0, smoke_sweep.output()[-4000:]
    return smoke_sweep


def _running_train_run(cluster):
    runs = [r for r in cluster.train_runs() if r["status"] == "RUNNING"]
    return runs[0] if runs else None


def test_dashboard_in_a_browser_shows_the_sweep(ray_cluster, smoke_sweep, system_tools):
    cluster = ray_cluster
    # token auth really is on: no token, no API
    with pytest.raises(urllib.error.HTTPError) as err:
        cluster.api("/api/version", token=None)
    assert err.value.code == 401
    run = wait_for(
        lambda: _running_train_run(cluster), 300, "a running Train run", sweep=smoke_sweep
    )
    job_id = json.loads((smoke_sweep.experiment / "medflip_jobs.json").read_text())[-1]

    async def steps(page):
        await page.call("Page.enable")
        await page.goto(cluster.dashboard + "/")
        asked = await page.wait_text(["Authentication Token Required"], 60)
        # what a person does: paste the token into the dialog and press SUBMIT
        await page.js("document.querySelector('input[type=password]').focus()")
        await page.call("Input.insertText", text=cluster.token)
        await page.js(
            "[...document.querySelectorAll('button')]"
            ".find(b => b.innerText.trim() === 'SUBMIT').click()"
        )
        await page.wait_text(["Recent jobs"], 60)  # the dialog reloads the page when accepted
        await page.goto(cluster.dashboard + "/#/jobs")
        jobs = await page.wait_text(["sweeps/mask_ratio.py", job_id, "RUNNING"], 60)
        await page.screenshot(ARTIFACTS / "dashboard.png")
        await page.goto(cluster.dashboard + "/#/actors")
        actors = await page.wait_text(["RayTrainWorker", "TrainController"], 60)
        await page.screenshot(ARTIFACTS / "dashboard-actors.png")
        # Ray 2.60's bundled page has no Train tab; its Train API answers the same session
        train = await page.js("fetch('/api/train/v2/runs/v1').then(r => r.json())")
        return asked, jobs, actors, train

    asked, jobs, actors, train = visit(steps)
    assert "Authentication Token Required" in asked
    assert "sweeps/mask_ratio.py" in jobs and job_id in jobs and "RUNNING" in jobs
    assert "RayTrainWorker" in actors and "TrainController" in actors
    names = {r["name"] for r in train["train_runs"]}
    assert run["name"] in names
    assert (smoke_sweep.experiment / run["name"]).is_dir()  # Train run = Tune trial id
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000


def test_dashboard_listens_on_loopback_only(ray_cluster):
    port = ray_cluster.dashboard_port
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            host, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                listeners.append(host)
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert listeners and set(listeners) <= loopback, listeners


def _prom_samples(prom_url: str, gauge: str) -> dict[str, list[float]]:
    """Every raw sample of ray_medflip_<gauge> for this experiment, by trial."""
    query = f'ray_medflip_{gauge}{{experiment="{NAME}"}}[30m]'
    out = _get(prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert out and out["status"] == "success", out
    by_trial: dict[str, list[float]] = {}
    for series in out["data"]["result"]:
        by_trial.setdefault(series["metric"]["trial"], []).extend(
            float(v) for _, v in series["values"]
        )
    return by_trial


def test_prometheus_scrapes_live_per_trial_metrics(ray_cluster, prometheus, finished):
    time.sleep(2)  # one more scrape interval for the last exported values
    targets = _get(prometheus["url"] + "/api/v1/targets")["data"]["activeTargets"]
    ours = [t for t in targets if t["labels"]["instance"].endswith(f":{ray_cluster.metrics_port}")]
    assert ours and ours[0]["health"] == "up", targets  # found through the discovery file
    table = results.load(str(finished.experiment))
    trials = sorted(table["trial_id"].unique())
    assert len(trials) == 2
    for gauge in GAUGES:
        samples = _prom_samples(prometheus["url"], gauge)
        assert sorted(samples) == trials, (gauge, sorted(samples))
        for trial, values in samples.items():
            reported = table.loc[table["trial_id"] == trial, gauge].dropna().tolist()
            # every scraped value is one the trial reported (no stale or foreign numbers)
            for v in values:
                assert any(math.isclose(v, r, rel_tol=1e-9, abs_tol=1e-12) for r in reported), (
                    gauge,
                    trial,
                    v,
                    reported,
                )
    for trial, steps in _prom_samples(prometheus["url"], "step").items():
        assert len(set(steps)) >= 2 and max(steps) <= 300, (trial, steps)  # seen live, updated
    print({g: {t: max(v) for t, v in _prom_samples(prometheus["url"], g).items()} for g in GAUGES})


def test_no_report_text_in_anything_the_sweep_wrote(ray_cluster, prometheus, finished):
    cfg = variants.get("tiny")  # the smoke sweep's corpus
    texts = list(train_corpus(cfg).texts) + list(build_eval_sets(cfg).retrieval_sentences)
    needles = report_needles(texts, exclude=prompt_corpus())
    assert len(needles) > 200
    roots = [finished.experiment, finished.log, ray_cluster.root, prometheus["data"]]
    hits, files, unreadable = scan(roots, needles)
    assert files > 100 and not unreadable, (files, unreadable[:5])
    assert hits == [], hits[:10]
    print(f"leak scan: {files} files, {len(needles)} report sentences/texts, no hits")
    # the scanner finds report text where it is hidden the same ways (positive control)
    planted = finished.experiment.parent / "planted"
    planted.mkdir()
    table = results.load(str(finished.experiment)).head(2).copy()
    table["experiment"] = needles[0]
    table.to_parquet(planted / "leak.parquet", compression="zstd")
    found, _, _ = scan([planted], needles)
    assert any(n == needles[0] for _, n in found)
