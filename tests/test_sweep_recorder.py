"""The driver-side results recorder and the rebuild from Tune's trial files (no Ray run)."""

import json
import math
import os

import pytest
from ray.tune.experiment import Trial

from medflip import variants
from medflip.config import apply_overrides, flatten
from medflip.results import table as results
from medflip.sweep import recorder
from medflip.sweep.recorder import ResultsRecorder, final_status, rebuild, reconcile


def config(ratio, seed=0):
    return {
        "sweep": "mask_ratio",
        "experiment": "exp",
        "base": flatten(apply_overrides(variants.get("tiny"), {"mask.variant": "image"})),
        "resources": {"num_workers": 2},
        "mask.image_ratio": ratio,
        "seed": seed,
    }


def report(step, status="running", acc=None):
    # What Tune hands the callback: our metrics plus Ray's bookkeeping keys.
    out = {
        "step": step,
        "train_time_s": step * 0.5,
        "loss": 1.0 / step,
        "status": status,
        "eval_time_s": 0.1,
        "checkpoint_path": "/x",
        "training_iteration": step // 10,
        "time_total_s": 3.0,
        "trial_id": "ignored",
        "done": False,
    }
    out["zeroshot_acc"] = 0.1 * step / 10 if acc is None else acc
    return out


def trial(trial_id, cfg):
    return Trial("train_driver_fn", config=cfg, trial_id=trial_id, stub=True)


def test_rows_per_report_no_duplicates_after_restart_and_statuses(tmp_path):
    rec = ResultsRecorder(str(tmp_path), flush_s=0.0)
    rec.setup()
    a, b, c, d = (
        trial("a", config(0.5)),
        trial("b", config(0.75, 1)),
        trial("c", config(0.0)),
        trial("d", config(0.9)),
    )
    for step in (10, 20):
        rec.on_trial_result(0, [], a, report(step))
    # A worker crash: the restarted run re-reports step 20 (and goes on).
    for step, status in ((20, "running"), (30, "completed")):
        rec.on_trial_result(0, [], a, report(step, status, acc=0.9 if step == 30 else None))
    rec.on_trial_complete(0, [], a)
    rec.on_trial_result(0, [], b, report(10))
    rec.on_trial_complete(0, [], b)  # ASHA stopped it while "running"
    rec.on_trial_result(0, [], c, report(10))
    rec.on_trial_error(0, [], c)
    rec.on_trial_error(0, [], d)  # never reported

    df = results.load(tmp_path)
    assert sorted(zip(df.trial_id, df.step, strict=True)) == [
        ("a", 10),
        ("a", 20),
        ("a", 30),
        ("b", 10),
        ("c", 10),
        ("d", 0),
    ]
    final = results.final_rows(df).set_index("trial_id")
    assert final.status.to_dict() == {
        "a": "completed",
        "b": "stopped",
        "c": "failed",
        "d": "failed",
    }
    assert final.loc["a", "zeroshot_acc"] == pytest.approx(0.9)
    assert final.loc["b", "mask.image_ratio"] == 0.75 and final.loc["b", "seed"] == 1
    assert final.loc["a", "mask.variant"] == "image" and final.loc["a", "num_workers"] == 2
    assert final.loc["a", "data.image_size"] == 32  # the tiny variant's value, not demo's


def test_final_status():
    assert final_status({"status": "diverged"}, errored=False) == "diverged"
    assert final_status({"status": "running"}, errored=False) == "stopped"
    assert final_status({"status": "completed"}, errored=True) == "failed"
    assert final_status(None, errored=False) == "stopped"


def write_trial_dir(root, trial_id, cfg, reports, error=False, cut_last=False):
    d = root / trial_id
    d.mkdir()
    (d / "params.json").write_text(json.dumps(cfg))
    lines = [json.dumps({**r, "trial_id": trial_id, "config": cfg}) for r in reports]
    text = "\n".join(lines) + "\n"
    if cut_last:
        text += lines[-1][: len(lines[-1]) // 2]  # a driver killed mid-write
    (d / "result.json").write_text(text)
    if error:
        (d / "error.txt").write_text("Traceback ...")


def test_rebuild_from_tune_files_matches_what_was_reported(tmp_path):
    write_trial_dir(
        tmp_path, "a", config(0.5), [report(10), report(20, "completed")], cut_last=True
    )
    write_trial_dir(tmp_path, "b", config(0.25), [report(10), report(20)], error=True)
    write_trial_dir(tmp_path, "c", config(0.0), [], error=True)
    write_trial_dir(tmp_path, "e", config(0.9), [report(10, "diverged", acc=math.nan)])
    (tmp_path / "train").mkdir()  # Ray Train's run storage sits beside the trial dirs
    df = rebuild(str(tmp_path))
    assert sorted(zip(df.trial_id, df.step, strict=True)) == [
        ("a", 10),
        ("a", 20),
        ("b", 10),
        ("b", 20),
        ("c", 0),
        ("e", 10),
    ]
    final = results.final_rows(df).set_index("trial_id")
    assert final.status.to_dict() == {
        "a": "completed",
        "b": "failed",
        "c": "failed",
        "e": "diverged",
    }
    assert final.loc["b", "mask.image_ratio"] == 0.25
    assert rebuild(str(tmp_path / "train")) is None


def test_reconcile_fills_gaps_keeps_settled_rows_and_replaces_a_corrupt_table(tmp_path):
    rec = ResultsRecorder(str(tmp_path), flush_s=0.0)
    b = trial("b", config(0.75))
    rec.on_trial_result(0, [], b, report(10))
    rec.on_trial_complete(0, [], b)  # settled "stopped": Tune's files cannot tell
    write_trial_dir(tmp_path, "b", config(0.75), [report(10)])
    write_trial_dir(tmp_path, "a", config(0.5), [report(10), report(20)])  # rows never written
    reconcile(str(tmp_path), results.manifest(1))
    final = results.final_rows(results.load(tmp_path)).set_index("trial_id")
    assert final.status.to_dict() == {"a": "running", "b": "stopped"}
    assert final.loc["a", "step"] == 20

    (tmp_path / results.FILENAME).write_bytes(b"not parquet")
    assert recorder.main([str(tmp_path)]) == 0
    assert len(results.load(tmp_path)) == 3


def test_reports_are_batched_but_never_lost_at_the_end(tmp_path):
    rec = ResultsRecorder(str(tmp_path), flush_s=1e9)
    a = trial("a", config(0.5))
    for step in (10, 20, 30):
        rec.on_trial_result(0, [], a, report(step))
    assert list(results.load(tmp_path).step) == [10]  # the first report is written at once
    rec.flush()
    assert (tmp_path / "results.parts").is_dir()  # the first report is the base; then parts
    rec.on_experiment_end([])
    assert list(results.load(tmp_path).step) == [10, 20, 30]
    assert sorted(os.listdir(tmp_path)) == [results.FILENAME]  # compacted at the end
