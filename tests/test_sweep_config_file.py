"""Sweeps take `--config FILE` like medflip.train: every trial gets its keys, --set wins."""

from medflip.sweep import launch
from medflip.sweep.spaces import get


def _plan(*argv):
    space = get("temperature")
    return launch.make_plan(space, launch.build_parser(space).parse_args(list(argv)))


def test_config_file_reaches_every_trial_and_set_overrides_it(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text("optim.lr = 0.002\n[mask]\ntext_ratio = 0.2\n")
    plan = _plan("--storage", str(tmp_path), "--config", str(path), "--set", "optim.lr=0.003")
    assert plan.fixed["optim.lr"] == 0.003 and plan.fixed["mask.text_ratio"] == 0.2


def test_bad_config_file_is_refused_before_ray_naming_file_and_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlrr = 1\n")
    argv = ["--storage", str(tmp_path), "--config", str(path), "--dry-run"]
    assert launch.main("temperature", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --config {path}: unknown config key 'optim.lrr'")
