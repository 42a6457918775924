"""Seeds as a replicate axis: run every suggestion of a searcher with K seeds.

Optuna should learn from the *mean* over seeds of a configuration, not from K noisy copies
of it, so the inner searcher is asked once per configuration (under the first replicate's
trial id) and told once, when all K replicates have finished.
"""

from __future__ import annotations

import math
import pickle

from ray.tune.search import Searcher


class Replicated(Searcher):
    """Wraps `inner`; each of its suggestions becomes len(seeds) trials, one per seed."""

    def __init__(self, inner: Searcher, seeds: list[int]):
        if not seeds:
            raise ValueError("--seeds: need at least one seed")
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.seeds = list(seeds)
        self._queue: list[tuple[str, dict, int]] = []  # (group, config, seed) not yet handed out
        self._group_of: dict[str, str] = {}  # trial id -> group (= first replicate's trial id)
        self._done: dict[str, dict[str, dict | None]] = {}  # group -> trial id -> final result

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | None:
        if not self._queue:
            config = self.inner.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self._queue = [(trial_id, config, seed) for seed in self.seeds]
            self._done[trial_id] = {}
        group, config, seed = self._queue.pop(0)
        self._group_of[trial_id] = group
        return {**config, "seed": seed}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Per-seed partial results would mislead Optuna; it hears the seed mean at the end.
        pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        group = self._group_of.get(trial_id)
        if group is None or trial_id in self._done.get(group, {}):
            return
        self._done[group][trial_id] = None if error else result
        if len(self._done[group]) < len(self.seeds):
            return
        mean = seed_mean(list(self._done[group].values()), self._metrics())
        self.inner.on_trial_complete(group, result=mean, error=mean is None)

    def _metrics(self) -> list[str]:
        metric = self.inner.metric
        return list(metric) if isinstance(metric, (list, tuple)) else [metric]

    def save(self, checkpoint_path: str) -> None:
        # The inner OptunaSearch (study, sampler, space function by reference) goes along.
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def seed_mean(results: list[dict | None], metrics: list[str]) -> dict | None:
    """Mean of each metric over the replicates that produced a finite value.

    A replicate that failed or diverged (NaN) is left out; None when no replicate has a
    finite value for some metric, so the searcher records the configuration as failed.
    """
    out = {}
    for m in metrics:
        values = [float(r[m]) for r in results if r and _finite(r.get(m))]
        if not values:
            return None
        out[m] = sum(values) / len(values)
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
