"""Ray on a shared machine: a sweep next to another running Ray instance.

The other instance is a real `ray start --head` (the session's cluster-up head, its own
temp dir and ports). Without --address a sweep either runs on a Ray of its own without
Ray's traceback noise, or -- where Ray itself would join the running cluster -- says in
one line to pass --address auto, before anything starts.
"""

import os
import subprocess
import sys

import pytest
from fixtures_ray import ROOT


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _sweep(storage, env, timeout=600):
    return subprocess.run(
        [sys.executable, "sweeps/mask_ratio.py", "--smoke-test", "--storage", str(storage)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sweep_that_ray_would_join_to_a_running_cluster_says_pass_address_auto(
    ray_cluster, tmp_path
):
    out = _sweep(tmp_path / "runs", _env(RAY_ADDRESS=ray_cluster.address), timeout=120)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --address auto" in lines[0], out.stderr
    assert ray_cluster.address in lines[0] and "RAY_ADDRESS" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before anything was written


@pytest.mark.slow
def test_sweep_next_to_another_ray_runs_on_its_own_without_traceback_noise(ray_cluster, tmp_path):
    out = _sweep(tmp_path / "runs", _env())
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert "multiple active Ray instances" not in text, text[-4000:]
    assert "2 trials" in out.stdout  # it ran the smoke sweep on its own Ray
