"""Data checks before any work: one line naming the path or key, exit 2, no traceback."""

import os
import re
import subprocess
import sys

import pytest
from fixtures_data import make_class_manifest

from medflip import variants
from medflip.config import ConfigError, apply_overrides
from medflip.data.checks import DataError, check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**sets):
    return apply_overrides(variants.get("tiny"), sets)


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_empty_mimic_root_names_the_missing_layout(tmp_path):
    root = tmp_path / "mimic"
    root.mkdir()
    cfg = tiny(**{"data.source": "mimic-cxr", "data.root": str(root)})
    with pytest.raises(DataError) as err:
        check(cfg)
    assert (
        one_line(err)
        == f"data.root: {root}: no files/ directory (expected files/pXX/pNNNNNNNN/sNNNNNNNN/)"
    )


def test_manifest_file_is_a_root_and_short_sets_name_the_size_that_fits(tmp_path):
    path = make_class_manifest(str(tmp_path), train_per_class=8, test_per_class=3)
    cfg = tiny(**{"data.source": "manifest", "data.root": path})  # a file, not a dir
    with pytest.raises(DataError) as err:
        check(cfg)
    msg = one_line(err)
    assert msg.startswith(f"{path}: evaluation set fiveclass needs 10 images per class")
    fits = int(re.search(r"set data.eval_per_class=(\d+)$", msg).group(1))
    assert 1 <= fits < 10
    check(apply_overrides(cfg, {"data.eval_per_class": fits}))  # the advice is right
    with pytest.raises(DataError):
        check(apply_overrides(cfg, {"data.eval_per_class": fits + 1}))  # and the largest


def test_too_few_training_pairs_for_a_batch(tmp_path):
    path = make_class_manifest(str(tmp_path), train_per_class=2, test_per_class=3)
    cfg = tiny(**{"data.source": "manifest", "data.root": path, "data.eval_per_class": 1})
    with pytest.raises(DataError) as err:
        check(cfg)
    assert re.fullmatch(
        rf"{re.escape(path)}: \d+ training pairs \(data.fraction=1.0 of \d+ frontal training "
        r"records; splits train 12, validate 0, test 18\) is fewer than one batch "
        r"\(optim.batch_size=16\)",
        one_line(err),
    )


def test_tokenizer_path_and_fp16_on_cpu(tmp_path):
    with pytest.raises(DataError) as err:
        check(tiny(**{"data.tokenizer": str(tmp_path / "nope")}))
    assert one_line(err) == f"data.tokenizer: '{tmp_path / 'nope'}' is not an existing directory"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"^data.tokenizer: .*empty' has no loadable tokenizer"):
        check(tiny(**{"data.tokenizer": str(tmp_path / "empty")}))
    with pytest.raises(DataError) as err:
        check(tiny(**{"optim.precision": "fp16"}), device="cpu")
    assert one_line(err).startswith("optim.precision: fp16 needs a CUDA device")
    check(tiny(**{"optim.precision": "fp16"}), device="cuda")  # fine on a GPU


def test_missing_root_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="data.root: .* is not an existing directory$"):
        tiny(**{"data.source": "openi", "data.root": str(tmp_path / "gone")})
    with pytest.raises(ConfigError, match="not an existing directory or manifest file$"):
        tiny(**{"data.source": "manifest", "data.root": str(tmp_path / "gone.csv")})


@pytest.mark.slow  # four interpreters importing torch: ~50 s on 2 busy cores
@pytest.mark.parametrize("cli", ["train", "sweep"])
@pytest.mark.parametrize("case", ["empty mimic root", "short eval sets"])
def test_cli_exits_2_with_one_line_before_any_work(tmp_path, cli, case):
    root = tmp_path / "mimic"
    root.mkdir()
    sets = ["--set", "data.source=mimic-cxr", "--set", f"data.root={root}"]
    want = f"error: data.root: {root}: no files/ directory (expected files/pXX/pNNNNNNNN/"
    if case == "short eval sets":  # the dry selection's own warnings must not leak out
        path = make_class_manifest(str(tmp_path / "m"), train_per_class=8, test_per_class=3)
        sets = ["--set", "data.source=manifest", "--set", f"data.root={path}"]
        want = f"error: {path}: evaluation set fiveclass needs 10 images per class"
    if cli == "train":
        cmd = [sys.executable, "-m", "medflip.train", "--variant", "tiny", *sets]
        cmd += ["--out", str(tmp_path / "run")]
    else:
        cmd = [sys.executable, "sweeps/mask_ratio.py", "--dry-run", "--variant", "tiny", *sets]
        cmd += ["--storage", str(tmp_path / "sweeps")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(want), lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweeps").exists()


def test_the_run_refuses_fp16_on_cpu_in_the_checks_words():
    """One fp16 rule (medflip.device.precision): the run and the checks say the same."""
    import torch

    from medflip.training.engine import Hooks
    from medflip.training.run_parts import build_parts

    if torch.cuda.is_available():
        pytest.skip("fp16 runs on this machine's GPU")
    cfg = tiny(**{"optim.precision": "fp16"})
    with pytest.raises(DataError) as checked:
        check(cfg, device="cpu")
    with pytest.raises(ValueError) as ran:
        build_parts(cfg, Hooks())
    assert str(ran.value) == str(checked.value)
