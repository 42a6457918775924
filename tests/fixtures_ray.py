"""Fixtures for tests that run medflip on a real Ray cluster, started as README says.

One head per test session via scripts/cluster-up.sh (a private temp dir, free ports, its
own token, dashboard on loopback), stopped via scripts/cluster-down.sh even when tests
fail; tests/conftest.py registers the fixtures for the whole suite and runs the tests that
use the head last, so it is up only while they run. Sweeps are the real CLI
(`sweeps/*.py --address auto`) in subprocesses, so they can be SIGKILLed like a
researcher's terminal can.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "runs" / "test-artifacts"
CLUSTER_CPUS = 2  # the machine's cores: one smoke trial (one worker) at a time


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (held open together so they differ)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def system_tools() -> dict[str, str]:
    """Chromium and Prometheus, installed by scripts/install-test-deps.sh when missing."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-test-deps.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode == 3:
        why = f"chromium/prometheus unavailable and apt unusable: {done.stderr.strip()}"
        if in_ci():
            pytest.fail(f"CI must run the browser and metrics tests; {why}")
        pytest.skip(why)
    assert done.returncode == 0, f"install-test-deps.sh failed:\n{done.stdout}\n{done.stderr}"
    return {"chromium": shutil.which("chromium"), "prometheus": shutil.which("prometheus")}


@dataclass
class Cluster:
    root: Path  # the private Ray temp dir
    address: str  # GCS, 127.0.0.1:port
    dashboard: str  # http://127.0.0.1:port
    dashboard_port: int
    metrics_port: int
    token_path: Path
    up_output: str

    @property
    def token(self) -> str:
        return self.token_path.read_text().strip()

    def driver_env(self, **extra) -> dict[str, str]:
        """A driver's environment as README says: token mode, the token, the address."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_ADDRESS=self.address,
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def api(self, path: str, token: str | None = "default"):
        """GET a dashboard API path with the token (None: without); JSON or HTTPError."""
        req = urllib.request.Request(self.dashboard + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {self.token if token == 'default' else token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def train_runs(self) -> list[dict]:
        try:
            return self.api("/api/train/v2/runs/v1")["train_runs"]
        except (urllib.error.URLError, KeyError, ValueError):
            return []  # the Train state actor starts with the first Train run

    def job_ids(self) -> set[str]:
        return {j.get("job_id") for j in self.api("/api/jobs/")}

    def session_dir(self) -> Path:
        state = dict(
            line.split("=", 1)
            for line in (self.root / "medflip-cluster.env").read_text().splitlines()
            if "=" in line
        )
        return Path(state["SESSION_DIR"])


@pytest.fixture(scope="session")
def ray_cluster():
    """A cluster-up head on loopback with its own ports, temp dir and token."""
    root = Path(tempfile.mkdtemp(prefix="mfc-", dir="/tmp"))  # short: socket paths <= 107
    (gcs, dash, metrics, client, agent_http, agent_grpc, runtime_env, node_mgr, obj_mgr) = (
        free_ports(9)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        MEDFLIP_RAY_TEMP_DIR=str(root),
        MEDFLIP_RAY_PORT=str(gcs),
        MEDFLIP_DASHBOARD_PORT=str(dash),
        MEDFLIP_METRICS_PORT=str(metrics),
        MEDFLIP_CLIENT_PORT=str(client),
        MEDFLIP_NUM_CPUS=str(CLUSTER_CPUS),
        MEDFLIP_NUM_GPUS="0",
        RAY_AUTH_TOKEN_PATH=str(root / "auth_token"),
        MEDFLIP_STOP_GRACE_S="3",
        RAY_metrics_report_interval_ms="1000",
    )  # Ray's default 10 s outlives a smoke trial
    extra = [
        f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--node-manager-port={node_mgr}",
        f"--object-manager-port={obj_mgr}",
        "--object-store-memory=200000000",
    ]
    up = subprocess.run(
        ["bash", str(ROOT / "scripts" / "cluster-up.sh"), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    try:
        assert up.returncode == 0, f"cluster-up failed:\n{up.stdout}\n{up.stderr}"
        yield Cluster(
            root,
            f"127.0.0.1:{gcs}",
            f"http://127.0.0.1:{dash}",
            dash,
            metrics,
            root / "auth_token",
            up.stdout,
        )
    finally:
        down = subprocess.run(
            ["bash", str(ROOT / "scripts" / "cluster-down.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(down.stdout, down.stderr)
        if not os.environ.get("MEDFLIP_KEEP_CLUSTER_DIR"):
            shutil.rmtree(root, ignore_errors=True)


class Sweep:
    """A sweep CLI in a subprocess (its own session, so a SIGKILL hits only the driver)."""

    def __init__(
        self,
        cluster: Cluster,
        script: str,
        args: list[str],
        storage: Path,
        name: str,
        log: Path,
        env: dict[str, str] | None = None,
    ):
        self.storage, self.name, self.log = storage, name, log
        self.experiment = storage / name
        cmd = [
            sys.executable,
            str(ROOT / "sweeps" / script),
            "--address",
            "auto",
            "--storage",
            str(storage),
            "--name",
            name,
            *args,
        ]
        self.cmd = cmd
        self.started = time.monotonic()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=cluster.driver_env(**(env or {})),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sweep still running after {timeout_s:.0f} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 1.0, sweep=None):
    """Poll `predicate` until truthy (returns its value); fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if sweep is not None and sweep.proc.poll() is not None:
            pytest.fail(
                f"sweep exited ({sweep.proc.returncode}) before {what}:\n{sweep.output()[-4000:]}"
            )
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
