"""Grid sweeps in the Optuna journal too, so `optuna-dashboard runs/<name>/optuna_study.journal`
shows every sweep, not only the searched ones.

A grid has no Optuna searcher (Tune enumerates it), so this Tune callback records each trial
in the experiment's study itself: asked with the grid point and seed when it starts (a
RUNNING trial, its Tune trial id as a user attribute), each evaluation's objective as an
intermediate value at its step, told COMPLETE with the last objective when it ends (FAIL
on an error or with no finite objective). Grid spaces have one objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna
from ray.tune import Callback

from medflip.sweep.journal import journal_storage
from medflip.sweep.plan import Plan


class GridStudyRecorder(Callback):
    def __init__(self, plan: Plan):
        self.experiment_dir = plan.experiment_dir
        self.study_name = plan.name
        self.metric, self.mode = plan.space.metrics[0], plan.space.modes[0]
        self.distributions = {
            k: optuna.distributions.CategoricalDistribution(list(a.values))
            for k, a in plan.axes.items()
        }
        self.distributions["seed"] = optuna.distributions.CategoricalDistribution(list(plan.seeds))
        self._study: optuna.Study | None = None
        self._trials: dict[str, optuna.Trial] = {}
        self._steps: dict[str, set[int]] = {}  # steps reported per trial (a restart repeats)
        self._last: dict[str, float] = {}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                study_name=self.study_name,
                storage=journal_storage(self.experiment_dir),
                direction="maximize" if self.mode == "max" else "minimize",
                load_if_exists=True,
            )
        return self._study

    def __getstate__(self):  # Tune pickles callbacks with the experiment state
        return {**self.__dict__, "_study": None, "_trials": {}, "_steps": {}}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        params = {k: trial.config[k] for k in self.distributions if k in trial.config}
        self.study.enqueue_trial(params, skip_if_exists=False)
        opt = self.study.ask(self.distributions)
        opt.set_user_attr("tune_trial_id", trial.trial_id)
        self._trials[trial.trial_id], self._steps[trial.trial_id] = opt, set()

    def on_trial_result(self, iteration, trials, trial, result: Mapping, **info) -> None:
        opt, value = self._trials.get(trial.trial_id), result.get(self.metric)
        if opt is None or not _finite(value):
            return
        self._last[trial.trial_id] = float(value)
        step, seen = result.get("step"), self._steps[trial.trial_id]
        if isinstance(step, int) and step not in seen:
            seen.add(step)
            opt.report(float(value), step)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._tell(trial.trial_id, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._tell(trial.trial_id, failed=True)

    def _tell(self, trial_id: str, failed: bool) -> None:
        opt = self._trials.pop(trial_id, None)
        self._steps.pop(trial_id, None)
        if opt is None:
            return
        value = self._last.pop(trial_id, None)
        if failed or value is None:
            self.study.tell(opt, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(opt, value)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
