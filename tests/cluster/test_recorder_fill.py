"""Rows a SIGKILLed driver never logged come back from Ray Train's checkpoint records.

Found by the driver-kill drill: Train registered the step-10 checkpoint (with its metrics)
but the driver died before Tune logged the report; the resumed trial continued at step 20
and step 10 was missing from results.parquet. The rebuild at (re)start now reads Train's
checkpoint_manager_snapshot.json too. The file below has the shape Ray 2.60 writes.
"""

import json

from medflip import variants
from medflip.config import flatten
from medflip.sweep.recorder import rebuild

CONFIG = {
    "sweep": "temperature",
    "experiment": "exp",
    "base": flatten(variants.get("tiny")),
    "resources": {"num_workers": 1},
    "loss.temperature": 0.05,
    "seed": 0,
}


def metrics(step):
    return {
        "step": step,
        "loss": 3.0 - step / 100,
        "zeroshot_acc": 0.2 + step / 1000,
        "train_time_s": step * 0.1,
        "status": "running",
    }


def test_rebuild_adds_reports_train_registered_but_tune_never_logged(tmp_path):
    trial = tmp_path / "66879d4f"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps(CONFIG))  # no result.json yet: killed early
    train = tmp_path / "train" / "66879d4f"
    train.mkdir(parents=True)
    snapshot = {
        "ray_version": "2.60.0",
        "checkpoint_results": [
            {
                "version": 0,
                "checkpoint_dir_name": "checkpoint_2026-11-22_18-18-21.993741",
                "metrics": metrics(10),
            },
        ],
        "latest_checkpoint_result": None,
        "pending_training_results": [],
        "current_report_index": 1,
    }
    (train / "checkpoint_manager_snapshot.json").write_text(json.dumps(snapshot))
    df = rebuild(str(tmp_path))
    assert list(zip(df.trial_id, df.step, strict=True)) == [("66879d4f", 10)]
    assert df.loc[0, "loss"] == 2.9 and df.loc[0, "loss.temperature"] == 0.05

    # once Tune has logged steps, the snapshot only fills what is missing (no duplicates)
    lines = [{**metrics(s), "trial_id": "66879d4f", "config": CONFIG} for s in (20, 30)]
    (trial / "result.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    snapshot["checkpoint_results"].append(
        {"version": 0, "checkpoint_dir_name": "checkpoint_b", "metrics": metrics(20)}
    )
    (train / "checkpoint_manager_snapshot.json").write_text(json.dumps(snapshot))
    df = rebuild(str(tmp_path))
    assert sorted(df.step) == [10, 20, 30]
    (train / "checkpoint_manager_snapshot.json").write_text("{not json")  # torn: ignored
    assert sorted(rebuild(str(tmp_path)).step) == [20, 30]
