"""benchmarks/sweep_scale.py runs at a tiny size (its table part; the sweep part runs in
tests/cluster/test_optuna_dashboard.py) and ends with its JSON line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~10 s quiet, ~35 s on the busy 2 cores
def test_tiny_sweep_scale_tables_end_with_json():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sweep_scale.py"), "--trials", ""]
    cmd += ["--append-rows", "1000,3000", "--frontier-rows", "2000"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(out["append_20_rows_s"]) == {"1000", "3000"}
    for fig in out["append_20_rows_s"].values():
        assert fig["before_rewrite"] > 0 and fig["after_append"] > 0
    assert out["load_frontier"]["rows"] == 2000 + 10 * 20  # the base and ten parts, once each
    assert out["load_frontier"]["frontier_peak_mb"] > 0
