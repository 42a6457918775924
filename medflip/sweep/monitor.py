"""Watching a sweep while it runs: live per-trial Prometheus metrics and a terminal view.

`LiveMetrics` turns each evaluation's metrics (the results schema) into Ray custom gauges
(`ray.util.metrics`), tagged by experiment and trial. Ray exports them on every node's
metrics port as `ray_medflip_<name>{experiment=..., trial=...}`; Prometheus scrapes them
(deploy/prometheus.yml) and the Ray dashboard's Metrics view can chart them. Only numbers
and the two identifiers leave the trial: no config strings, no report text.

`ProgressView` is a Ray Tune callback for the sweep driver: trials done / running /
pending, the best result so far and the elapsed and estimated remaining time, printed
every `every_s` seconds and whenever a trial ends.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ray import tune

# gauge name -> (metrics key, description). Names get Ray's "ray_" prefix on export.
GAUGES: dict[str, tuple[str, str]] = {
    "medflip_throughput": ("throughput", "training pairs per second over the last interval"),
    "medflip_loss": ("loss", "mean training loss over the last interval"),
    "medflip_zeroshot_acc": ("zeroshot_acc", "latest 5-class zero-shot accuracy"),
    "medflip_device_hours": ("device_hours", "device-hours spent training so far"),
    "medflip_step": ("step", "optimiser steps so far"),
}
TAG_KEYS = ("experiment", "trial")

_gauges: dict = {}  # one Gauge object per name and process: Ray keys series by tags anyway
_live: dict[tuple[str, str], LiveMetrics] = {}  # per (experiment, trial), for record_metrics


def gauge_values(metrics: Mapping[str, object]) -> dict[str, float]:
    """The gauge readings one report yields: finite numbers only (a missing eval is skipped,
    so `medflip_zeroshot_acc` keeps the latest evaluated value)."""
    out = {}
    for name, (key, _) in GAUGES.items():
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[name] = float(value)
    return out


class LiveMetrics:
    """Per-trial gauges; call `record(metrics)` on rank 0 with each report's metrics."""

    def __init__(self, experiment: str, trial: str):
        from ray.util.metrics import Gauge  # only inside a Ray worker or driver

        for name, (_, description) in GAUGES.items():
            if name not in _gauges:
                _gauges[name] = Gauge(name, description=description, tag_keys=TAG_KEYS)
        self.tags = {"experiment": str(experiment), "trial": str(trial)}

    def record(self, metrics: Mapping[str, object]) -> dict[str, float]:
        """Set every gauge the report has a finite value for; returns what was set."""
        values = gauge_values(metrics)
        for name, value in values.items():
            _gauges[name].set(value, tags=self.tags)
        return values


def record_metrics(metrics: Mapping[str, object], context: Mapping[str, object]) -> None:
    """Report hook for trial.py (`report_hooks`): rank 0 sets its trial's gauges.

    `context` carries `experiment`, `trial_id` and `rank`; other ranks report nothing, so
    each trial is one series per gauge however many workers it has.
    """
    if context.get("rank", 0) != 0:
        return
    key = (str(context.get("experiment", "")), str(context.get("trial_id", "")))
    if key not in _live:
        _live[key] = LiveMetrics(*key)
    _live[key].record(metrics)


@dataclass(frozen=True)
class Progress:
    """One reading of the sweep's state (what the progress line shows)."""

    total: int
    done: int  # finished, failed ones included
    failed: int
    running: int
    pending: int  # waiting for resources or not yet suggested by the search algorithm
    best: float | None
    best_trial: str | None
    elapsed_s: float
    remaining_s: float | None  # None until one trial has finished


def estimate_remaining(
    finished_s: Sequence[float], running_s: Sequence[float], waiting: int, slots: int
) -> float | None:
    """Seconds until the sweep ends, assuming every trial takes the mean finished duration.

    Running trials need the mean minus what they have run (at least 0); waiting trials then
    fill the `slots` concurrent places in order, each taking the earliest free one.
    """
    if not finished_s:
        return None
    mean = sum(finished_s) / len(finished_s)
    free_at = sorted(max(0.0, mean - s) for s in running_s)
    free_at += [0.0] * max(0, max(1, slots) - len(free_at))
    for _ in range(waiting):
        free_at.sort()
        free_at[0] += mean
    return max(free_at) if (running_s or waiting) else 0.0


def format_progress(p: Progress, metric: str) -> str:
    """`[medflip] 3/8 done (1 failed) | 2 running | 3 pending | best ... | elapsed | left`."""
    failed = f" ({p.failed} failed)" if p.failed else ""
    best = "best: none yet"
    if p.best is not None:
        best = f"best {metric} {p.best:.4f} (trial {p.best_trial})"
    left = (
        "left: after the first trial ends"
        if p.remaining_s is None
        else (f"~{_clock(p.remaining_s)} left")
    )
    return (
        f"[medflip] {p.done}/{p.total} done{failed} | {p.running} running | "
        f"{p.pending} pending | {best} | elapsed {_clock(p.elapsed_s)} | {left}"
    )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressView(tune.Callback):
    """The sweep driver's terminal view (a Tune callback; pass it in RunConfig.callbacks).

    `total` is the number of trials the sweep will run (samples x seeds); `slots` the
    number that can run at once (max_concurrent_trials), used for the time estimate.
    """

    def __init__(
        self,
        total: int,
        metric: str = "zeroshot_acc",
        mode: str = "max",
        slots: int | None = None,
        every_s: float = 30.0,
        write: Callable[[str], None] | None = None,
    ):
        if mode not in ("max", "min"):
            raise ValueError(f"mode: {mode!r} is not 'max' or 'min'")
        self.total, self.metric, self.mode, self.slots = total, metric, mode, slots
        self.every_s = every_s
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self.started = time.monotonic()
        self.last_line = -math.inf
        self.last_state: tuple | None = None
        self.trial_started: dict[str, float] = {}
        self.best: float | None = None
        self.best_trial: str | None = None

    def _consider(self, trial_id: str, result: Mapping | None) -> None:
        value = (result or {}).get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            return
        better = self.best is None or (
            value > self.best if self.mode == "max" else value < self.best
        )
        if better:
            self.best, self.best_trial = float(value), trial_id

    def snapshot(self, trials: Sequence) -> Progress:
        """Count `trials` (Tune Trial objects) by status and estimate the time left."""
        now = time.monotonic()
        finished, running_for, done, failed, pending = [], [], 0, 0, 0
        for t in trials:
            self._consider(t.trial_id, t.last_result)  # restored trials count too
            if t.status in ("TERMINATED", "ERROR"):
                done, failed = done + 1, failed + (t.status == "ERROR")
                seconds = (t.last_result or {}).get("time_total_s")
                if isinstance(seconds, (int, float)) and seconds > 0:
                    finished.append(float(seconds))
            elif t.status == "RUNNING":
                running_for.append(now - self.trial_started.get(t.trial_id, now))
            else:  # PENDING, PAUSED
                pending += 1
        total = max(self.total, len(trials))
        unsuggested = total - len(trials)
        slots = self.slots or max(1, len(running_for))
        remaining = estimate_remaining(finished, running_for, pending + unsuggested, slots)
        return Progress(
            total,
            done,
            failed,
            len(running_for),
            pending + unsuggested,
            self.best,
            self.best_trial,
            now - self.started,
            remaining,
        )

    def _show(self, trials: Sequence, force: bool = False) -> None:
        """A line every `every_s`; `force` (a trial ended) only when the counts changed."""
        now = time.monotonic()
        if not force and now - self.last_line < self.every_s:
            return
        p = self.snapshot(trials)
        state = (p.done, p.failed, p.running, p.pending, p.best)
        if force and state == self.last_state and now - self.last_line < self.every_s:
            return  # e.g. the experiment's end right after its last trial's
        self.last_line, self.last_state = now, state
        self.write(format_progress(p, self.metric))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.trial_started[trial.trial_id] = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._consider(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._show(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._show(trials, force=True)

    def on_step_end(self, iteration, trials, **info):
        self._show(trials)

    def on_experiment_end(self, trials, **info):
        self._show(trials, force=True)
