"""The driver side of the results table: a Tune callback, and a rebuild from Ray's files.

`ResultsRecorder` appends one row per reported evaluation to
`<experiment>/results.parquet` (a small part file per flush, folded into the base when the
experiment ends; `medflip.results.table` dedups by (trial_id, step), so a trial restarted from a
checkpoint re-reports its steps without duplicating them) and settles each trial's status
when it ends: the engine's `completed` or `diverged`, `stopped` when a scheduler ended it
early, `failed` on a Ray error.

`rebuild(experiment_dir)` recovers the same rows from Tune's own per-trial `result.json`
files (plus `error.txt` for failures): run at every (re)start of a sweep so rows a killed
driver never wrote are filled in, and from the command line
(`python -m medflip.sweep.recorder RUN_DIR`) when the table is lost.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help and bad flags answered before Ray and pandas load
    from medflip.sweep.tool_parsers import recorder_parser

    recorder_parser().parse_args()

import glob
import json
import logging
import os
import sys
import time

from ray.tune import Callback

from medflip.config import flatten
from medflip.results import table as results
from medflip.sweep.trial import build_config

log = logging.getLogger("medflip.sweep")


def trial_record(
    trial_id: str, config: dict, metrics: dict, manifest: dict, flat: dict | None = None
) -> dict:
    """One `results.rows_from_records` record from a trial's config and one of its results
    (`flat`: the trial's `flatten(build_config(config))`, when the caller already has it)."""
    workers = config.get("resources", {}).get("num_workers", manifest.get("num_workers", 0))
    return {
        "experiment": config.get("experiment", ""),
        "sweep": config.get("sweep", ""),
        "trial_id": trial_id,
        "config": flat if flat is not None else flatten(build_config(config)),
        "manifest": {
            **manifest,
            "num_workers": workers,
            "tokenizer_hash": config.get("tokenizer", {}).get("hash", ""),
        },
        "metrics": metrics,
    }


def final_status(last_metrics: dict | None, errored: bool) -> str:
    """A finished trial's status from its last report and how Tune ended it."""
    if errored:
        return "failed"
    status = (last_metrics or {}).get("status")
    if status in ("completed", "diverged"):
        return status
    return "stopped"  # ended by the scheduler (ASHA) while still "running"


class ResultsRecorder(Callback):
    """Tune callback writing results.parquet while the sweep runs (driver side)."""

    def __init__(self, experiment_dir: str, flush_s: float = 5.0):
        self.experiment_dir = experiment_dir
        self.flush_s = flush_s  # one part file per flush: batch the reports that arrive
        self._last: dict[str, dict] = {}  # trial id -> its latest record
        self._pending: list[dict] = []
        self._flushed_at: float | None = None  # the first report is written at once

    @property
    def path(self) -> str:
        return os.path.join(self.experiment_dir, results.FILENAME)

    def _manifest(self) -> dict:
        if getattr(self, "_manifest_cache", None) is None:
            self._manifest_cache = results.manifest(0)  # num_workers: per trial
        return self._manifest_cache

    def setup(self, **info) -> None:
        reconcile(self.experiment_dir, self._manifest())

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        flat = self._last.get(trial.trial_id, {}).get("config")  # a trial's config is fixed
        rec = trial_record(trial.trial_id, trial.config, result, self._manifest(), flat)
        self._last[trial.trial_id] = rec
        self._pending.append(rec)
        if self._flushed_at is None or time.monotonic() - self._flushed_at >= self.flush_s:
            self.flush()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._settle(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._settle(trial, errored=True)

    def _settle(self, trial, errored: bool) -> None:
        rec = self._last.pop(trial.trial_id, None)
        if rec is None:  # never reported (e.g. failed at start): one row at step 0
            rec = trial_record(trial.trial_id, trial.config, {"step": 0}, self._manifest())
        status = final_status(rec["metrics"], errored)
        self._pending.append({**rec, "metrics": {**rec["metrics"], "status": status}})
        self.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.flush()
        if os.path.exists(self.path):
            results.compact(self.path)  # one file again, duplicates dropped

    def flush(self) -> None:
        """Append the pending rows to the table (one part file, written atomically)."""
        if self._pending:
            results.append(self.path, results.rows_from_records(self._pending))
            self._pending = []
        self._flushed_at = time.monotonic()


def _read_result_lines(path: str) -> list[dict]:
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut short by a killed driver: skip, keep the rest
                log.warning("%s:%d: unreadable result line skipped", path, n)
    return out


def _registered_reports(trial_dir: str) -> list[dict]:
    """Reports Ray Train registered with a checkpoint (`train/<trial>/checkpoint_manager_
    snapshot.json`). A driver SIGKILLed after Train registered a checkpoint but before Tune
    logged its report leaves that report only here: the resumed trial continues after it."""
    experiment, trial_id = os.path.split(trial_dir)
    path = os.path.join(experiment, "train", trial_id, "checkpoint_manager_snapshot.json")
    try:
        with open(path) as f:
            results_ = json.load(f).get("checkpoint_results", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r["metrics"] for r in results_ if "step" in (r.get("metrics") or {})]


def records_from_trial_dir(trial_dir: str, manifest: dict) -> list[dict]:
    """Records for one Tune trial directory: one per result line; `failed` if it errored.

    Reports Ray Train registered but Tune never logged (a killed driver) are added."""
    result_file = os.path.join(trial_dir, "result.json")
    lines = _read_result_lines(result_file) if os.path.exists(result_file) else []
    logged = {r.get("step") for r in lines}
    unlogged = [m for m in _registered_reports(trial_dir) if m["step"] not in logged]
    if unlogged:
        with open(os.path.join(trial_dir, "params.json")) as f:
            config = json.load(f)
        extra = [{**m, "trial_id": os.path.basename(trial_dir), "config": config} for m in unlogged]
        lines = sorted(lines + extra, key=lambda r: r.get("step", 0))
    errored = os.path.exists(os.path.join(trial_dir, "error.txt"))
    if not lines:
        if not errored:
            return []
        with open(os.path.join(trial_dir, "params.json")) as f:
            config = json.load(f)
        # launch.py names trial directories by trial id.
        lines = [{"trial_id": os.path.basename(trial_dir), "config": config, "step": 0}]
    recs = [trial_record(r["trial_id"], r["config"], r, manifest) for r in lines]
    last = recs[-1]["metrics"]
    # Tune's files do not say whether a still-"running" trial was stopped or interrupted:
    # only a Ray error (error.txt) is settled here; the live recorder settles the rest.
    if errored:
        recs[-1]["metrics"] = {**last, "status": "failed"}
    return recs


def rebuild(experiment_dir: str, manifest: dict | None = None):
    """The results table recomputed from Tune's trial files (None when there are none)."""
    manifest = manifest or results.manifest(0)
    recs = []
    trial_dirs = {
        os.path.dirname(p)
        for name in ("result.json", "params.json")
        for p in glob.glob(os.path.join(experiment_dir, "*", name))
    }
    for trial_dir in sorted(trial_dirs):
        try:
            recs.extend(records_from_trial_dir(trial_dir, manifest))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: skipped while rebuilding results (%s)", trial_dir, exc)
    if not recs:
        return None
    return results.merge(None, results.rows_from_records(recs))


def reconcile(experiment_dir: str, manifest: dict) -> None:
    """Fill the table with rows found in Ray's trial files; rows already there win.

    Rows already written carry settled statuses (e.g. `stopped`) that the files alone
    cannot tell; an unreadable table is replaced by the rebuilt one.
    """
    path = os.path.join(experiment_dir, results.FILENAME)
    rebuilt = rebuild(experiment_dir, manifest)
    if rebuilt is None:
        return
    try:
        existing = results.load(path)
    except FileNotFoundError:
        existing = None
    except results.ResultsError as exc:
        log.warning("%s; rebuilding it from the trial files", exc)
        existing = None
    merged = rebuilt if existing is None else results.merge(rebuilt, existing)
    results.write(merged, path)


def main(argv: list[str] | None = None) -> int:
    """python -m medflip.sweep.recorder [--compact-only] RUN_DIR (tool_parsers.py)."""
    from medflip.sweep.tool_parsers import recorder_parser

    args = recorder_parser().parse_args(argv)
    if not args.compact_only:
        reconcile(args.run_dir, results.manifest(0))
    try:
        print(results.compact(args.run_dir))
    except FileNotFoundError:
        print(f"error: no results table in {args.run_dir}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
