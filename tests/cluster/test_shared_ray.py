"""Ray on a shared machine: a sweep next to another running Ray instance.

The other instance is a real `ray start --head` (the session's cluster-up head, its own
temp dir and ports). Without --address a sweep either runs on a Ray of its own without
Ray's traceback noise (tests/test_sweep_ray.py's NaN smoke sweep runs so, next to this
head), or -- where Ray itself would join the running cluster -- says in one line to pass
--address auto, before anything starts.
"""

import os
import subprocess
import sys

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
