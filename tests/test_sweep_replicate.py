"""Seeds as replicates around a real OptunaSearch: grouping, seed means, save/restore."""

import math

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from medflip.sweep import raycompat
from medflip.sweep.replicate import Replicated, seed_mean
from medflip.sweep.spaces import joint_space, temperature_space


def make(seeds, define=temperature_space, metric="zeroshot_acc", mode="max"):
    inner = OptunaSearch(
        space=define,
        metric=metric,
        mode=mode,
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
    )
    return Replicated(inner, seeds)


def test_seed_mean_by_hand():
    runs = [{"a": 0.5, "b": 2.0}, {"a": 0.7, "b": float("nan")}, None, {"a": 0.9, "b": 4.0}]
    assert seed_mean(runs, ["a", "b"]) == pytest.approx({"a": 0.7, "b": 3.0})
    assert seed_mean([None, {"a": float("nan")}], ["a"]) is None


def test_each_suggestion_runs_once_per_seed_and_optuna_hears_the_mean():
    rep = make([3, 4, 5])
    configs = [rep.suggest(f"t{i}") for i in range(6)]
    assert [c["seed"] for c in configs] == [3, 4, 5, 3, 4, 5]
    assert (
        configs[0]["loss.temperature"]
        == configs[1]["loss.temperature"]
        == configs[2]["loss.temperature"]
        != configs[3]["loss.temperature"]
    )
    for i, acc in enumerate((0.2, 0.4, 0.9)):
        rep.on_trial_complete(f"t{i}", {"zeroshot_acc": acc})
    rep.on_trial_complete("t3", {"zeroshot_acc": 0.6})
    rep.on_trial_complete("t4", error=True)
    study = raycompat.optuna_study(rep.inner)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1 and done[0].value == pytest.approx(0.5)  # (0.2 + 0.4 + 0.9) / 3
    rep.on_trial_complete("t5", {"zeroshot_acc": 0.8})  # t4 failed: mean of t3, t5
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.value for t in done] == pytest.approx([0.5, 0.7])
    rep.on_trial_complete("t5", {"zeroshot_acc": 0.0})  # a duplicate completion is ignored
    assert [t.value for t in study.trials] == pytest.approx([0.5, 0.7])


def test_all_replicates_failing_fails_the_configuration():
    rep = make([0, 1])
    rep.suggest("a"), rep.suggest("b")
    rep.on_trial_complete("a", {"zeroshot_acc": math.nan})
    rep.on_trial_complete("b", error=True)
    assert raycompat.optuna_study(rep.inner).trials[0].state == optuna.trial.TrialState.FAIL


def test_multi_objective_means_each_objective():
    rep = make([0, 1], joint_space, ["zeroshot_acc", "device_hours"], ["max", "min"])
    a, b = rep.suggest("a"), rep.suggest("b")
    assert {k: v for k, v in a.items() if k != "seed"} == {
        k: v for k, v in b.items() if k != "seed"
    }
    rep.on_trial_complete("a", {"zeroshot_acc": 0.4, "device_hours": 1.0})
    rep.on_trial_complete("b", {"zeroshot_acc": 0.6, "device_hours": 3.0})
    assert raycompat.optuna_study(rep.inner).trials[0].values == pytest.approx([0.5, 2.0])


def test_save_restore_keeps_the_tpe_history_and_pending_replicates(tmp_path):
    rep = make([0, 1])
    for i in range(6):  # 3 configurations, all finished
        rep.suggest(f"t{i}")
        rep.on_trial_complete(f"t{i}", {"zeroshot_acc": 0.1 * i})
    first = rep.suggest("t6")  # its second replicate is still queued
    path = str(tmp_path / "searcher.pkl")
    rep.save(path)

    fresh = make([0, 1])
    fresh.restore(path)
    study = raycompat.optuna_study(fresh.inner)
    assert len(study.trials) == 4 and isinstance(study.sampler, optuna.samplers.TPESampler)
    second = fresh.suggest("t7")
    assert second["seed"] == 1 and second["loss.temperature"] == first["loss.temperature"]
    fresh.on_trial_complete("t6", {"zeroshot_acc": 0.3})
    fresh.on_trial_complete("t7", {"zeroshot_acc": 0.5})
    assert study.trials[3].value == pytest.approx(0.4)
