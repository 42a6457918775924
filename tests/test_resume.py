"""Resume never mixes settings: a run or sweep started one way is not continued another way.

The refusals need no training (the check runs on the saved config before any work); the
one accepted resume trains the tiny variant for real and reads the rows it wrote.
"""

import json
import os

import pandas as pd
import pytest

from medflip import config, train, variants
from medflip.sweep import launch, settings
from medflip.sweep.plan import TUNER_STATE
from medflip.sweep.spaces import get
from medflip.training import resume


def _fake_checkpoint(out, cfg):
    """What checkpoint.save leaves: state.pt plus the config it trained with."""
    ckpt = out / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"not read: the refusal comes first")
    (ckpt / "config.json").write_text(config.to_json(cfg))
    return ckpt


def test_differences_name_each_key_with_both_values_and_skip_safe_keys():
    saved = {"mask.image_ratio": 0.5, "optim.lr": 1e-3, "optim.max_steps": 10, "gone": 1}
    requested = {"mask.image_ratio": 0.75, "optim.lr": 1e-3, "optim.max_steps": 99, "new": 2}
    diffs = resume.differences(saved, requested, known={"mask.image_ratio", "optim.lr", "new"})
    assert diffs == [
        "mask.image_ratio: saved 0.5, requested 0.75",
        "new: saved (absent), requested 2",
    ]
    assert resume.differences(saved, saved) == []


def test_train_resume_with_other_settings_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = _fake_checkpoint(out, config.apply_overrides(variants.get("tiny"), {}))
    before = sorted(os.listdir(out)), (ckpt / "state.pt").read_bytes()
    argv = ["--variant", "tiny", "--out", str(out), "--resume"]
    rc = train.main([*argv, "--set", "mask.image_ratio=0.75", "--set", "loss.kind=medclip"])
    err = capsys.readouterr().err
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert "mask.image_ratio: saved 0.5, requested 0.75" in line
    assert "loss.kind: saved 'clip', requested 'medclip'" in line
    assert (sorted(os.listdir(out)), (ckpt / "state.pt").read_bytes()) == before  # no rows


def test_train_resume_without_the_saved_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = _fake_checkpoint(out, variants.get("tiny"))
    (ckpt / "config.json").unlink()
    assert train.main(["--variant", "tiny", "--out", str(out), "--resume"]) == 2
    assert "config.json" in capsys.readouterr().err and not (out / "results.parquet").exists()


@pytest.mark.slow
def test_train_resume_continues_when_only_a_budget_changes(tmp_path, capsys):
    """10 steps, then resume to 20: one trial, every row labelled as it was trained."""
    out = tmp_path / "run"
    base = ["--variant", "tiny", "--out", str(out), "--set", "mask.image_ratio=0.25"]
    base += ["--set", "eval.every_share=1.0"]  # one evaluation, at the end of each budget
    assert train.main([*base, "--set", "optim.max_steps=10"]) == 0
    assert train.main([*base, "--set", "optim.max_steps=20", "--resume"]) == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    final = json.loads(stdout[-1])  # the JSON line stays last, after the summary table
    assert final["step"] == 20 and any(line.strip().startswith("steps") for line in stdout)
    rows = pd.read_parquet(out / "results.parquet")
    assert list(rows["step"]) == [10, 20] and set(rows["mask.image_ratio"]) == {0.25}
    assert rows["trial_id"].nunique() == 1
    assert list(rows["optim.max_steps"]) == [10, 20]  # each row says the budget it ran under
    # The refused resume of the same run writes nothing more.
    assert train.main([*base, "--set", "optim.lr=0.01", "--resume"]) == 2
    assert len(pd.read_parquet(out / "results.parquet")) == 2


def _sweep(tmp_path, *argv):
    return launch.main("temperature", ["--storage", str(tmp_path), "--dry-run", *argv])


def test_sweep_resume_with_other_settings_is_refused_naming_each_key(tmp_path, capsys):
    space = get("temperature")
    started = launch.make_plan(
        space, launch.build_parser(space).parse_args(["--storage", str(tmp_path)])
    )
    settings.save(started)
    (tmp_path / "temperature" / TUNER_STATE).write_bytes(b"")  # a sweep exists here
    assert _sweep(tmp_path, "--resume") == 0  # same settings: the dry run goes ahead
    capsys.readouterr()
    assert _sweep(tmp_path, "--resume", "--set", "optim.lr=0.01", "--seeds", "2") == 2
    err = capsys.readouterr().err
    assert "optim.lr: saved 0.001, requested 0.01" in err
    assert "--seeds: saved [0, 1, 2, 3, 4], requested [0, 1]" in err  # the default is 5 seeds
    assert len(err.strip().splitlines()) == 1


def test_sweep_resume_of_an_unrecorded_experiment_says_it_cannot_compare(tmp_path, capsys):
    (tmp_path / "temperature").mkdir()
    (tmp_path / "temperature" / TUNER_STATE).write_bytes(b"")
    assert _sweep(tmp_path, "--resume") == 0
    assert "cannot be compared" in capsys.readouterr().err
