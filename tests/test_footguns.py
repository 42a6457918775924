"""Footguns refused (or made explicit) with one line before any work: fp16 on a CPU-only
sweep, smoke-test seeds, a searched key set in a --config file, a second run into an
existing --out, --resume with nothing to resume; files written readable on shared storage."""

from __future__ import annotations

import os
import re
import stat

import pyarrow as pa
import pytest

from medflip import train
from medflip.data import cache
from medflip.results import parts
from medflip.sweep import launch


def sweep(tmp_path, name, *argv):
    return launch.main(name, ["--storage", str(tmp_path / "runs"), "--dry-run", *argv])


def error_line(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_sweep_dry_run_refuses_fp16_on_a_cpu_only_machine(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: fp16 is allowed here")
    rc = sweep(tmp_path, "mask_ratio", "--variant", "tiny", "--set", "optim.precision=fp16")
    assert rc == 2
    assert error_line(capsys).startswith("error: optim.precision: fp16 needs a CUDA device")
    # naming GPUs explicitly (a cluster's) is the user's statement: checked as CUDA
    rc = sweep(tmp_path, "mask_ratio", "--variant", "tiny", "--set", "optim.precision=fp16",
               "--address", "auto", "--gpus-per-worker", "1")  # fmt: skip
    assert rc == 0


@pytest.mark.parametrize("argv,seeds", [([], 1), (["--seeds", "3"], 3), (["--seeds", "1"], 1)])
def test_smoke_test_runs_the_seeds_asked_for(tmp_path, capsys, argv, seeds):
    assert sweep(tmp_path, "mask_ratio", "--smoke-test", *argv) == 0
    out = capsys.readouterr().out
    assert f"trials (grid x {seeds} seed(s))" in out
    assert sorted({int(s) for s in re.findall(r"'seed': (\d+)", out)}) == list(range(seeds))


def test_a_searched_key_in_a_config_file_is_blamed_on_the_file(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text("[mask]\nimage_ratio = 0.5\n")
    assert sweep(tmp_path, "mask_ratio", "--variant", "tiny", "--config", str(toml)) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: --config {toml}: sets mask.image_ratio, which the mask_ratio")
    assert "--set" not in line
    # the same key from --set is still --set's
    assert sweep(tmp_path, "mask_ratio", "--set", "mask.image_ratio=0.5") == 2
    assert error_line(capsys).startswith("error: --set mask.image_ratio:")


def test_train_into_an_existing_run_without_resume_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.parquet").write_bytes(b"rows of an earlier run")
    assert train.main(["--variant", "tiny", "--out", str(out)]) == 2
    line = error_line(capsys)
    assert line == (
        f"error: --out {out}: already holds a run (results.parquet); pass --resume to "
        "continue it, or choose a new --out"
    )
    assert sorted(os.listdir(out)) == ["results.parquet"]
    assert (out / "results.parquet").read_bytes() == b"rows of an earlier run"


@pytest.mark.parametrize("exists", [False, True])
def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys, exists):
    out = tmp_path / "run"
    if exists:
        (out / "checkpoint").mkdir(parents=True)  # a checkpoint dir without its state.pt
    assert train.main(["--variant", "tiny", "--out", str(out), "--resume"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: --resume: no checkpoint in {out}/checkpoint (no state.pt)")
    assert "drop --resume" in line
    assert not (out / "results.parquet").exists()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_results_and_caches_are_group_readable(tmp_path, umask_022):
    """mkstemp would make them 0600: unreadable to the rest of a group on shared storage."""
    target = tmp_path / "results.parquet"
    parts.write_atomic(pa.table({"x": [1, 2]}), target)
    assert mode(target) == 0o644
    path = tmp_path / "tokenizer.json"
    with cache.atomic_file(str(path)) as tmp:
        with open(tmp, "w") as fh:
            fh.write("{}")
    assert mode(path) == 0o644
    with cache.atomic_dir(str(tmp_path / "prepared")) as tmp:
        open(os.path.join(tmp, "shard"), "w").close()
    assert mode(tmp_path / "prepared") == 0o755
    os.umask(0o077)  # a private umask is the user's choice, kept
    parts.write_atomic(pa.table({"x": [1]}), tmp_path / "private.parquet")
    assert mode(tmp_path / "private.parquet") == 0o600


def test_a_real_results_table_and_tokenizer_are_group_readable(tmp_path, umask_022):
    """Through the writers themselves: results.append and the experiment tokenizer."""
    from medflip import config, variants
    from medflip.data.dataset import build_tokenizer
    from medflip.data.tokenizer import experiment_tokenizer
    from medflip.results import table as results

    cfg = variants.get("tiny")
    path, _ = experiment_tokenizer(cfg, str(tmp_path), lambda: build_tokenizer(cfg))
    assert mode(path) == 0o644
    flat = config.flatten(cfg)
    row = results.row(flat, {"step": 1, "status": "running"}, results.manifest(1), "e", "s", "t")
    results.append(str(tmp_path), [row])
    results.compact(str(tmp_path))
    assert mode(tmp_path / "results.parquet") == 0o644
