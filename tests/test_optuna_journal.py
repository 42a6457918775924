"""An Optuna-searched sweep keeps its study in a journal file in the experiment dir.

The searcher is the sweep's own (`tuning.search_alg`); the study is read back the way
`optuna-dashboard <file>` reads it: a fresh JournalStorage on the file, nothing shared.
"""

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from medflip.sweep import journal, launch, tuning
from medflip.sweep.spaces import get


def plan(tmp_path, *extra):
    space = get("temperature")
    argv = ["--storage", str(tmp_path), "--name", "tau", "--variant", "tiny", *extra]
    return launch.make_plan(space, launch.build_parser(space).parse_args(argv))


def read_study(path, name):
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(path)))


def run_configs(searcher, first, n, metric):
    """Suggest and finish `n` configurations x 2 seeds; returns {tau: seed mean}."""
    out = {}
    for i in range(first, first + n):
        a, b = searcher.suggest(f"t{i}a"), searcher.suggest(f"t{i}b")
        assert a["loss.temperature"] == b["loss.temperature"] and {a["seed"], b["seed"]} == {0, 1}
        searcher.on_trial_complete(f"t{i}a", {metric: 0.1 * i})
        searcher.on_trial_complete(f"t{i}b", {metric: 0.1 * i + 0.2})
        out[a["loss.temperature"]] = 0.1 * i + 0.1
    return out


def test_study_is_a_journal_in_the_experiment_and_a_restored_searcher_keeps_it(tmp_path):
    p = plan(tmp_path, "--seeds", "2", "--num-samples", "4")
    metric = p.space.metrics[0]
    searcher = tuning.search_alg(p)
    path = journal.study_path(p.experiment_dir)
    assert path == str(tmp_path / "tau" / journal.STUDY_FILE)
    expected = run_configs(searcher, 0, 2, metric)
    live = read_study(path, "tau")  # what the dashboard sees while the sweep runs
    got = {t.params["loss.temperature"]: t.value for t in live.trials}
    assert got == pytest.approx(expected)

    searcher.save(str(tmp_path / "searcher-state.pkl"))  # what Tune checkpoints
    resumed = tuning.search_alg(p)  # a --resume: Tuner.restore, then the saved state
    resumed.restore(str(tmp_path / "searcher-state.pkl"))
    expected.update(run_configs(resumed, 2, 2, metric))
    study = read_study(path, "tau")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert {t.params["loss.temperature"]: t.value for t in study.trials} == pytest.approx(expected)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]  # one study, continued


def test_grid_sweeps_have_no_searcher(tmp_path):
    space = get("mask_ratio")
    argv = ["--storage", str(tmp_path), "--name", "g", "--variant", "tiny"]
    p = launch.make_plan(space, launch.build_parser(space).parse_args(argv))
    assert tuning.search_alg(p) is None
    assert not (tmp_path / "g").exists()


def test_grid_trials_are_recorded_in_the_study(tmp_path):
    """A grid's trials reach the same journal through GridStudyRecorder (no searcher):
    running while they train, intermediate values per evaluation, COMPLETE or FAIL."""
    import pickle

    from ray.tune.experiment import Trial

    from medflip.sweep.grid_journal import GridStudyRecorder

    space = get("mask_ratio")
    argv = ["--storage", str(tmp_path), "--name", "g", "--variant", "tiny", "--seeds", "2"]
    p = launch.make_plan(space, launch.build_parser(space).parse_args(argv))
    rec = GridStudyRecorder(p)
    metric = space.metrics[0]
    a = Trial("f", config={"mask.image_ratio": 0.5, "seed": 1}, trial_id="a", stub=True)
    b = Trial("f", config={"mask.image_ratio": 0.9, "seed": 0}, trial_id="b", stub=True)
    rec.on_trial_start(0, [], a)
    rec.on_trial_start(0, [], b)
    path = journal.study_path(p.experiment_dir)
    live = read_study(path, "g").trials  # what the dashboard shows mid-sweep
    assert [t.state for t in live] == [optuna.trial.TrialState.RUNNING] * 2
    assert [t.params for t in live] == [
        {"mask.image_ratio": 0.5, "seed": 1},
        {"mask.image_ratio": 0.9, "seed": 0},
    ]
    for step, acc in ((10, 0.3), (20, 0.4), (20, 0.4)):  # a restart re-reports step 20
        rec.on_trial_result(0, [], a, {metric: acc, "step": step})
    rec.on_trial_result(0, [], b, {metric: float("nan"), "step": 10})
    rec.on_trial_complete(0, [], a)
    rec.on_trial_error(0, [], b)
    done = read_study(path, "g").trials
    assert [t.state for t in done] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
    ]
    assert done[0].value == pytest.approx(0.4)
    assert done[0].intermediate_values == {10: pytest.approx(0.3), 20: pytest.approx(0.4)}
    assert done[0].user_attrs == {"tune_trial_id": "a"}
    assert pickle.loads(pickle.dumps(rec)).study_name == "g"  # Tune checkpoints callbacks
