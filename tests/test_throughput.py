"""benchmarks/throughput.py on CPU: a real one-worker TorchTrainer fit, tiny sizes."""

import os
import sys

import pytest

from medflip import variants
from medflip.models import flops

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


@pytest.mark.slow
def test_cpu_demo_through_torchtrainer_reports_pairs_per_s_and_flops():
    import throughput

    result = throughput.main([
        "--device", "cpu", "--variant", "demo", "--batch-size", "4", "--steps", "1",
        "--warmup", "1", "--ratios", "0,0.75", "--workers", "1", "--threads", "1",
        "--fused-adamw", "--peak-tflops", "1",
    ])  # fmt: skip
    rows = {row["ratio"]: row for row in result["throughput"]}
    assert set(rows) == {0.0, 0.75} and all(r["workers"] == 1 for r in rows.values())
    cfg = variants.get("demo")
    for ratio, row in rows.items():
        assert row["pairs_per_s"] > 0
        assert row["pairs_per_s"] == pytest.approx(4 / (row["step_ms"] / 1e3), rel=0.01)
        # TFLOP/s = pairs/s x the FLOP count of a pair at the batch's encoded length
        per_pair = row["tflops_per_device"] * 1e12 / row["pairs_per_s"]
        lengths = [flops.train_flops_per_pair(cfg, ratio, t) for t in range(50, 70)]
        assert min(lengths) * 0.99 <= per_pair <= max(lengths) * 1.01
        assert row["mfu"] == pytest.approx(row["tflops_per_device"], rel=1e-3)  # peak 1


def test_bad_ratio_list_is_one_clear_error(capsys):
    import throughput

    with pytest.raises(SystemExit) as exit_info:
        throughput.parse(["--ratios", "0,half"])
    assert exit_info.value.code == 2
    assert "--ratios" in capsys.readouterr().err
