"""The results table: one row per (trial_id, step) report.

It lives in `<storage>/<experiment>/results.parquet`.

The schema lives here once (`COLUMNS`, `SCHEMA`) so the sweep's writer and the analysis
readers agree. Columns, in order: the ids (`experiment`, `sweep`, `trial_id`, `seed`), every
config key by its dotted name (`medflip.config.flatten`; `seed` is both a config key and an
id, one column), the metrics (`METRICS`) and a manifest (`MANIFEST`).

Writes are atomic (a temp file in the same directory, then `os.replace`), so a crash never
leaves a half-written table; a restarted trial or resumed sweep re-reports steps, and
`merge` keeps only the latest row per (trial_id, step).

The table is append-only while a sweep runs (results_log.py): `append` writes the new rows
as one small part file under `results.parts/` next to `results.parquet` (a cost
proportional to the new rows, not the table), `load` reads the base file and the newer
parts and keeps the latest row per (trial_id, step), and `compact` folds the parts into
`results.parquet` (the sweep does so when it ends). Only the known string columns may
hold text, and no cell may look like free text (a newline or > 512 characters): report text
never reaches the results.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from medflip import __version__, config
from medflip.results import parts

FILENAME = "results.parquet"
STATUSES = ("running", "completed", "diverged", "failed", "stopped")
MAX_TEXT = 512  # longer strings are free text (a report), not a label or a path

IDS: dict[str, type] = {"experiment": str, "sweep": str, "trial_id": str, "seed": int}
CONFIG: dict[str, type] = {k: t for k, t in config.KEYS.items() if k != "seed"}
_LOSSES = ("loss", "loss_contrastive", "loss_svd", "loss_mlm", "loss_mim", "temperature")
_RETRIEVAL = tuple(f"retrieval_{d}_p{k}" for d in ("i2t", "t2i") for k in (1, 2, 5, 10))
_EVAL_EXTRA: dict[str, type] = {
    "eval_time_s": float,
    "held_time_s": float,  # trial.py: all time the trial held its workers (start-up, retries)
    "zeroshot_binary_bacc": float,
    "zeroshot_binary_auroc": float,
    "zeroshot_binary_n_pos": int,
    "zeroshot_binary_n_neg": int,
    "zeroshot_items": str,  # medflip.evaluation.items: packed per-item correctness, test half
    "zeroshot_n": int,  # test items scored (a curve point under eval.curve_items: fewer)
    **{
        f"val_{k}": float
        for k in ("zeroshot_acc", "zeroshot_f1", "zeroshot_binary_acc")
        + ("zeroshot_binary_bacc", "zeroshot_binary_auroc")
    },
}
METRICS: dict[str, type] = {
    "step": int,
    "samples_seen": int,
    "train_time_s": float,
    # training FLOPs so far (models/flops.py: forward + backward, both towers, kept tokens;
    # full tokens in unmasked tuning): the compute axis that does not depend on the hardware
    "train_flops": float,
    "budget_share": float,  # training/schedule.py progress: the share of the budget spent
    "lr": float,  # the schedule's learning rate at this report (what the next step runs)
    "phase": str,  # schedule.PHASES: warmup | main | unmasked_tune, at this report
    "wall_time_s": float,
    "device_hours": float,
    "device_type": str,
    "precision": str,  # engine.py: what ran (optim.precision=auto resolves per device)
    "throughput": float,
    "data_wait_share": float,  # engine.py reports it: share of train time spent waiting on data
    **{k: float for k in _LOSSES},
    "zeroshot_acc": float,
    "zeroshot_f1": float,
    "zeroshot_binary_acc": float,
    **_EVAL_EXTRA,  # medflip/evaluation/evaluate.py: val_* = validation half, plain = held-out test
    **{k: float for k in _RETRIEVAL},
    "probe_acc": float,
    "status": str,
}
MANIFEST: dict[str, type] = {
    "config_hash": str,
    "git_sha": str,
    "medflip_version": str,
    "torch_version": str,
    "ray_version": str,
    "num_workers": int,
    "tokenizer_hash": str,  # the experiment's one tokenizer (medflip.data.tokenizer)
}
COLUMNS: dict[str, type] = {**IDS, **CONFIG, **METRICS, **MANIFEST}
REQUIRED = ("experiment", "trial_id", "step")  # a row without these cannot be placed
KEY = ("trial_id", "step")  # identity of a report within one experiment's file
LOAD_KEY = ("experiment", "trial_id", "step")  # identity across combined experiments

_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
SCHEMA = pa.schema([(name, _ARROW[t]) for name, t in COLUMNS.items()])
# pandas >= 3 has a real string dtype (NaN for missing); 2.x keeps text as object.
_STR = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
DTYPES = {
    name: {int: "Int64", float: "float64", bool: "boolean", str: _STR}[t]
    for name, t in COLUMNS.items()
}


class ResultsError(ValueError):
    """Bad rows or an unreadable results file; the message names the column or path."""


def _close(name: str, pool: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(pool), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _flat_hash(flat: Mapping[str, Any]) -> str:
    # Same formula as config.config_hash, from the flat dict (no re-validation of paths).
    blob = json.dumps(dict(flat), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def row(
    config_flat: Mapping[str, Any],
    metrics: Mapping[str, Any],
    manifest: Mapping[str, Any],
    experiment: str,
    sweep: str,
    trial_id: str,
) -> dict:
    """One results row (a dict keyed by column name) from one report.

    `config_flat` is `config.flatten(cfg)` (its `seed` fills the `seed` column); `metrics`
    holds names from `METRICS` (unknown ones raise); `manifest` holds names from `MANIFEST`
    plus optionally `device_type` (see `manifest()`); `config_hash` is derived from
    `config_flat` when absent. Missing metrics stay missing (NaN once written).
    """
    unknown_cfg = [k for k in config_flat if k not in config.KEYS]
    if unknown_cfg:
        hint = _close(unknown_cfg[0], config.KEYS)
        raise ResultsError(f"unknown config key(s) {unknown_cfg}{hint}")
    for name in metrics:
        if name not in METRICS:
            raise ResultsError(
                f"unknown metric {name!r}{_close(name, METRICS)}; "
                f"known metrics: {', '.join(METRICS)}"
            )
    for name in manifest:
        if name not in MANIFEST and name != "device_type":
            raise ResultsError(f"unknown manifest field {name!r}{_close(name, MANIFEST)}")
    out = {"experiment": experiment, "sweep": sweep, "trial_id": str(trial_id)}
    out.update(config_flat)
    out.update(manifest)
    out.update(metrics)  # a device_type in the metrics wins over the manifest's
    out.setdefault("config_hash", _flat_hash(config_flat))
    return out


def rows_from_records(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Rows from trial records, e.g. rebuilt from Ray's own trial files (the sweep's job).

    Each record: `{"experiment", "sweep", "trial_id", "config": {dotted: value},
    "manifest": {...}, "metrics": {...}}`. Ray's bookkeeping keys in `metrics`
    (`training_iteration`, `timestamp`, ...) are dropped: only `METRICS` names are kept.
    """
    out = []
    for rec in records:
        metrics = {k: v for k, v in rec.get("metrics", {}).items() if k in METRICS}
        out.append(
            row(
                rec.get("config", {}),
                metrics,
                rec.get("manifest", {}),
                rec["experiment"],
                rec.get("sweep", ""),
                rec["trial_id"],
            )
        )
    return out


def _cast(name: str, values: pd.Series) -> pd.Series:
    kind = COLUMNS[name]
    if kind is str:
        if not pd.api.types.is_string_dtype(values) or values.dtype == object:
            present = values[values.notna()]
            bad = present[~present.map(lambda v: isinstance(v, str))]
            if len(bad):
                raise ResultsError(f"column {name!r}: expected text, got {bad.iloc[0]!r}")
        text = values.astype(DTYPES[name])
        long = text[
            text.str.contains("\n", regex=False, na=False)
            | (text.str.len() > MAX_TEXT).fillna(False)
        ]
        if len(long):
            raise ResultsError(
                f"column {name!r}: {long.iloc[0][:40]!r}... looks like free "
                f"text (newline or > {MAX_TEXT} chars); results hold no reports"
            )
        return text
    if kind is bool:
        present = values[values.notna()]
        if len(present) and not present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            raise ResultsError(f"column {name!r}: expected true/false, got {present.iloc[0]!r}")
        return values.astype("boolean")
    try:
        numbers = pd.to_numeric(values, errors="raise").astype("float64")
    except (ValueError, TypeError):
        raise ResultsError(
            f"column {name!r}: expected numbers, got non-numeric values (e.g. {values.iloc[0]!r})"
        ) from None
    if kind is int:
        finite = numbers[numbers.notna()]
        if not np.all(finite == np.round(finite)):
            raise ResultsError(f"column {name!r}: expected integers, got {finite.tolist()[:3]}")
        return numbers.astype("Int64")
    return numbers


def frame(data: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Validate rows (a DataFrame or dicts from `row`) into the canonical frame.

    Unknown columns raise (naming close names); missing columns are filled with NaN/NA;
    every column is cast to its dtype (`DTYPES`) and ordered as `COLUMNS`.
    """
    df = data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    unknown = [c for c in df.columns if c not in COLUMNS]
    if unknown:
        raise ResultsError(
            f"unknown results column(s) {unknown}{_close(str(unknown[0]), COLUMNS)};"
            f" metrics are: {', '.join(METRICS)}"
        )
    df = df.reindex(columns=list(COLUMNS))
    for name in COLUMNS:
        df[name] = _cast(name, df[name])
    for name in REQUIRED:
        if df[name].isna().any():
            raise ResultsError(f"column {name!r}: missing in {int(df[name].isna().sum())} row(s)")
    bad = df["status"].notna() & ~df["status"].isin(STATUSES)
    if bad.any():
        raise ResultsError(
            f"column 'status': {df['status'][bad].iloc[0]!r} is not one of {', '.join(STATUSES)}"
        )
    return df.reset_index(drop=True)


def results_path(path: str | os.PathLike) -> Path:
    """A run dir -> `<dir>/results.parquet`; a `.parquet` path is returned as is."""
    p = Path(path)
    return p if p.suffix == ".parquet" else p / FILENAME


def _table(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)


def write(data: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Validate and write the whole table atomically; returns the base file written.

    Validation happens before anything touches the disk, so bad rows leave an existing
    table intact. `path` is a run dir or a `.parquet` file; parent dirs are created. Parts
    appended before are superseded (the new base records that it covers them).
    """
    table = _table(frame(data))
    target = results_path(path)
    parts.replace_base(table, target)
    return target


def _dedup(df: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    df = df.drop_duplicates(subset=list(key), keep="last")
    return df.sort_values(["experiment", "trial_id", "step"], kind="stable").reset_index(drop=True)


def merge(existing: pd.DataFrame | None, new: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Rows of both; for a (trial_id, step) in both, `new`'s row wins (the latest report)."""
    new = frame(new)
    if existing is None or len(existing) == 0:
        return _dedup(new, KEY)
    return _dedup(pd.concat([frame(existing), new], ignore_index=True), KEY)


def append(path: str | os.PathLike, rows: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Add `rows` to the table at `path`; returns them validated (not the whole table).

    The cost is that of the new rows: they become one part file (results_parts.py), the
    first append of a table its base file. A (trial_id, step) appended again replaces the
    earlier row when the table is read. One writer per table (the sweep driver).
    """
    new = frame(rows)
    target = results_path(path)
    if target.exists() or parts.list_parts(target):
        parts.add_part(_table(new), target)
    else:
        parts.replace_base(_table(new), target)  # the table exists from its first report on
    return new


def compact(path: str | os.PathLike) -> Path:
    """Fold the parts into the base file (one rewrite, duplicates dropped); returns it."""
    target = results_path(path)
    df, covered = _read(target)
    parts.replace_base(_table(df), target, covered)
    return target


_MAPPER = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get


def _read(file: Path) -> tuple[pd.DataFrame, int]:
    """The table at `file` (base + newer parts, latest row per (trial_id, step)) and the
    highest part seq read."""
    try:
        tables, covered = parts.read(file)
        table = pa.concat_tables(tables, promote_options="default")
    except parts.PartError as exc:
        raise ResultsError(str(exc)) from None
    except pa.ArrowException as exc:
        raise ResultsError(f"{file}: parts do not share one results schema ({exc})") from None
    try:
        return _dedup(frame(table.to_pandas(types_mapper=_MAPPER)), KEY), covered
    except ResultsError as exc:
        raise ResultsError(f"{file}: {exc}") from None


def load(path: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The results of a run dir (`<dir>/results.parquet`), a Parquet file, or a list of them.

    Each table is its base file plus the parts appended since (`<dir>/results.parts/`).
    Combined tables are deduplicated by (experiment, trial_id, step), later paths winning,
    so a sweep and its resumed continuation (or the same file twice) are not double counted.
    Raises FileNotFoundError / ResultsError naming the path.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ResultsError("no results paths given")
    frames = []
    for p in paths:
        file = results_path(p)
        try:
            frames.append(_read(file)[0])
        except FileNotFoundError:
            raise FileNotFoundError(f"no results at {p} (looked for {file})") from None
    return _dedup(pd.concat(frames, ignore_index=True), LOAD_KEY)


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, trial_id): its last report (highest step).

    Each column holds the trial's last *reported* value (a final report without evaluation
    keeps the last evaluation's metrics); `status` is the last reported status, or
    "running" when the trial never reported one.
    """
    keys = ["experiment", "trial_id"]
    ordered = df.sort_values(keys + ["step"], kind="stable")
    last = ordered.groupby(keys, sort=True, as_index=False, dropna=False).last()
    last["status"] = last["status"].fillna("running")
    return last.reindex(columns=list(df.columns)).reset_index(drop=True)


def _git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(package: str) -> str:
    # importlib.metadata: no import of torch or ray needed, and absence is tolerated.
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def manifest(num_workers: int, device_type: str | None = None) -> dict:
    """The provenance of a trial's rows: git sha, versions, worker count (and device type)."""
    out = {
        "git_sha": _git_sha(),
        "medflip_version": __version__,
        "torch_version": _version("torch"),
        "ray_version": _version("ray"),
        "num_workers": int(num_workers),
    }
    if device_type is not None:
        out["device_type"] = str(device_type)
    return out
