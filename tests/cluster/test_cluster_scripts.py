"""The cluster scripts' safety rails and the README/config agreement (fast: no cluster)."""

import os
import re
import subprocess

from fixtures_ray import ROOT


def _run(script, tmp_path, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MEDFLIP_"))}
    full.update(MEDFLIP_RAY_TEMP_DIR=str(tmp_path / "ray"), **env)
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script)],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cluster_up_warns_loudly_before_exposing_the_dashboard(tmp_path):
    # /bin/false stands in for `ray`: the warning must come before anything starts
    out = _run(
        "cluster-up.sh",
        tmp_path,
        MEDFLIP_DASHBOARD_HOST="0.0.0.0",
        RAY_BIN="/bin/false",
        RAY_AUTH_TOKEN_PATH=str(tmp_path / "token"),
    )
    assert out.returncode == 1 and "ray start failed" in out.stderr
    assert out.stderr.count("WARNING") >= 3
    assert "MEDFLIP_DASHBOARD_HOST=0.0.0.0 exposes the Ray dashboard" in out.stderr
    quiet = _run(
        "cluster-up.sh", tmp_path, RAY_BIN="/bin/false", RAY_AUTH_TOKEN_PATH=str(tmp_path / "token")
    )
    assert "WARNING" not in quiet.stderr  # loopback (the default) is silent


def test_cluster_up_makes_a_private_token(tmp_path):
    _run("cluster-up.sh", tmp_path, RAY_BIN="/bin/false", RAY_AUTH_TOKEN_PATH=str(tmp_path / "t"))
    token = tmp_path / "t"
    assert re.fullmatch(r"[0-9a-f]{64}", token.read_text())
    assert oct(token.stat().st_mode & 0o777) == "0o600"


def test_cluster_down_without_a_cluster_touches_nothing(tmp_path):
    out = _run("cluster-down.sh", tmp_path)
    assert out.returncode == 0 and "nothing to stop" in out.stdout


def test_readme_shows_the_scrape_config_the_tests_use():
    config = (ROOT / "deploy" / "prometheus.yml").read_text()
    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    body = [line for line in config.splitlines() if line.strip() and not line.startswith("#")]
    assert len(body) >= 6
    assert "\n".join(body) in "\n".join(readme)  # blank lines aside, verbatim


def test_nothing_in_medflip_exposes_the_dashboard():
    """Ray's own default is loopback; medflip must not widen it anywhere in code."""
    sources = [*(ROOT / "medflip").rglob("*.py"), *(ROOT / "sweeps").glob("*.py")]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text()
        assert "0.0.0.0" not in text and "dashboard_host" not in text, path
    up = (ROOT / "scripts" / "cluster-up.sh").read_text()
    assert "DASH_HOST=${MEDFLIP_DASHBOARD_HOST:-127.0.0.1}" in up
