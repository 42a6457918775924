"""What both analysis scripts share: inputs, checks with one-line errors, labels, output."""

from __future__ import annotations

import difflib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medflip import config
from medflip.results import table as results

TIME_AXES = ("train_time_s", "wall_time_s", "device_hours")  # depend on the device
AXIS_LABELS = {
    "train_time_s": "training time (s)",
    "wall_time_s": "wall-clock time (s)",
    "held_time_s": "time held, start-up and evaluation included (s)",
    "device_hours": "device-hours",
    "samples_seen": "training pairs seen",
    "train_flops": "training FLOPs",
    "step": "optimiser steps",
}
METRIC_LABELS = {
    "zeroshot_acc": "zero-shot accuracy (5-class)",
    "zeroshot_f1": "zero-shot macro-F1 (5-class)",
    "zeroshot_binary_acc": "zero-shot accuracy (binary)",
    "probe_acc": "linear-probe accuracy",
}
CHANCE = {
    "zeroshot_acc": 0.2,  # 5 balanced classes
    "zeroshot_binary_acc": 0.5,
    "zeroshot_binary_bacc": 0.5,
    "zeroshot_binary_auroc": 0.5,
}
LOWER_IS_BETTER = ("loss", "loss_contrastive", "loss_svd", "loss_mlm", "loss_mim")
# Keys a sweep varies on purpose, in the order --by autodetection prefers them.
PREFERRED_BY = (
    "mask.image_ratio",
    "mask.variant",
    "loss.svd_weight",
    "loss.temperature",
    "loss.kind",
    "loss.svd_form",
    "mask.text_ratio",
    "data.fraction",
    "data.paired",
)
_NOT_FACTORS = ("seed",)  # varies in every sweep by design


class AnalysisError(Exception):
    """A user-facing problem: printed as one line, exit code 2."""


def cli(name: str, main: Callable[[list[str] | None], int], argv=None) -> int:
    """Run `main`, turning AnalysisError / results errors into one stderr line and exit 2."""
    try:
        return main(argv)
    except (AnalysisError, results.ResultsError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:  # a traceback of a failed allocation says nothing useful
        print(
            f"{name}: error: out of memory; narrow the table with --where KEY=VALUE "
            "or lower --bootstrap",
            file=sys.stderr,
        )
        return 2


def newest_run(root: str | Path = "runs") -> Path:
    """The run dir under `root` whose results.parquet changed last."""
    found = sorted(Path(root).glob(f"*/{results.FILENAME}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise AnalysisError(
            f"no results: no run under ./{root} has {results.FILENAME}; "
            "pass a run dir or a results.parquet"
        )
    return found[-1].parent


def load_inputs(paths: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The combined results of `paths` (default: the newest run under ./runs)."""
    paths = paths or [str(newest_run())]
    df = results.load(paths)
    if len(df) == 0:
        raise AnalysisError(f"no results: {', '.join(paths)} hold no rows")
    return df, paths


def available_metrics(df: pd.DataFrame) -> list[str]:
    numeric = [m for m, t in results.METRICS.items() if t in (int, float)]
    return [m for m in numeric if m in df and df[m].notna().any()]


def require_metric(df: pd.DataFrame, name: str, flag: str) -> None:
    """Raise naming the available metrics if `name` has no values in `df`."""
    if name not in df or not df[name].notna().any():
        what = "is not a metric" if name not in results.METRICS else "has no values here"
        raise AnalysisError(
            f"{flag} {name!r} {what}; available: {', '.join(available_metrics(df))}"
        )


def varied_keys(df: pd.DataFrame) -> list[str]:
    """Config keys taking more than one value (seed and fault injection excluded)."""
    keys = [k for k in results.CONFIG if not k.startswith("fault.") and k not in _NOT_FACTORS]
    return [k for k in keys if df[k].nunique(dropna=False) > 1]


def where(df: pd.DataFrame, conditions: list[str] | None) -> pd.DataFrame:
    """Rows matching every `--where KEY=VALUE` (values compared as text, 0.5 == '0.5')."""
    for cond in conditions or []:
        key, sep, value = cond.partition("=")
        if not sep or key not in df.columns:
            raise AnalysisError(f"--where {cond!r}: expected KEY=VALUE with KEY a results column")
        df = df[df[key].map(label) == label(_number_or_text(value))]
        if len(df) == 0:
            raise AnalysisError(f"--where {cond!r}: no rows left")
    return df


def _number_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def check_pooling(df: pd.DataFrame, key: str | None, flag: str) -> None:
    """Refuse to pool trials that differ in a config key other than `key` and the seed:
    they are different configurations, not replicates. The message lists each key with
    its values and how to keep one setting."""
    others = [k for k in varied_keys(df) if k != key]
    if not others:
        return
    listed = "; ".join(
        f"{k} in {{{', '.join(label(v) for v in sorted_levels(df[k], k))}}}" for k in others
    )
    first = others[0]
    example = label(sorted_levels(df[first], first)[0])
    raise AnalysisError(
        f"trials differ in more than {flag} {key}: {listed}; pooling them as seeds would "
        f"mix configurations: keep one setting with --where {first}={example} (repeatable), "
        f"or compare that key with {flag} {first}"
    )


def pick_by(df: pd.DataFrame, by: str | None, flag: str = "--by") -> tuple[str | None, str]:
    """(key, note): the grouping column, checked or autodetected; None = one group.
    `flag` is the calling tool's own flag name, for its messages."""
    if by:
        if by not in df.columns:
            close = difflib.get_close_matches(
                by, list(config.KEYS) + list(df.columns), n=3, cutoff=0.5
            )
            hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
            raise AnalysisError(f"{flag} {by!r} is not a results column{hint}")
        return by, f"grouping by {by}"
    varied = varied_keys(df)
    preferred = [k for k in PREFERRED_BY if k in varied]
    if len(preferred) == 1 or len(varied) == 1:
        key = preferred[0] if preferred else varied[0]
        others = [k for k in varied if k != key]
        tail = f" (also varied: {', '.join(others)})" if others else ""
        return key, f"grouping by {key} (autodetected){tail}"
    if not varied:
        return None, "no config key varies: one group"
    raise AnalysisError(
        f"several config keys vary ({', '.join(varied)}): pick one with {flag} KEY "
        "and keep one setting of the others with --where KEY=VALUE"
    )


def label(level) -> str:
    """A level as text: 0.5 -> '0.5', 'none' -> 'none'."""
    if isinstance(level, (float, np.floating)):
        return f"{float(level):g}"
    return str(level)


def sorted_levels(values, key: str | None = None) -> list:
    """Distinct levels: in the config's order of choices for `key` if it has one, else sorted."""
    levels = list(pd.unique(pd.Series(list(values)).dropna()))
    if key in config.CHOICES:
        order = config.CHOICES[key]
        return sorted(levels, key=lambda v: (order.index(v) if v in order else len(order), v))
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=str)


def pick_baseline(levels: list, baseline: str | None) -> object:
    """The baseline level: as asked, else 'none', else 0, else the first level."""
    if baseline is None:
        for want in ("none", 0):
            for lv in levels:
                if lv == want and not isinstance(lv, bool):
                    return lv
        return levels[0]
    for lv in levels:
        if label(lv) == baseline or str(lv) == baseline:
            return lv
        try:
            if not isinstance(lv, (str, bool)) and float(lv) == float(baseline):
                return lv
        except ValueError:
            pass
    raise AnalysisError(
        f"--baseline {baseline!r} is not a level; levels: {', '.join(label(lv) for lv in levels)}"
    )


def select_device(df: pd.DataFrame, x: str | None, device_type: str | None) -> pd.DataFrame:
    """Rows of one device type when x is a time; refuse to mix device types silently."""
    types = df["device_type"].fillna("unknown")
    found = sorted(types.unique())
    if device_type is not None:
        if device_type not in found:
            raise AnalysisError(
                f"--device-type {device_type!r} not found; found: {', '.join(found)}"
            )
        return df[types == device_type]
    if x in TIME_AXES and len(found) > 1:
        raise AnalysisError(
            f"results mix device types ({', '.join(repr(t) for t in found)}); "
            f"times from different devices do not share an axis: pick one with "
            f"--device-type TYPE, or use --x samples_seen"
        )
    return df


def number(v) -> float | None:
    """A JSON number: inf and NaN become None (null)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def jsonable(obj):
    """A copy with every float a JSON number: inf and NaN become None (null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return number(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fmt(v, spec: str = ".3f") -> str:
    """A number for a table: 'n/a' for missing, '∞' for infinite."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return format(v, spec)


def fmt_ci(v, lo, hi, spec: str = ".3f") -> str:
    """'1.234 [1.100, 1.400]', or just the value when there is no interval."""
    if lo is None or hi is None or any(isinstance(z, float) and math.isnan(z) for z in (lo, hi)):
        return fmt(v, spec)
    return f"{fmt(v, spec)} [{fmt(lo, spec)}, {fmt(hi, spec)}]"


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def results_dir(path: str | Path) -> Path:
    """The run dir of a run dir or of its results.parquet (where analysis/ goes)."""
    return results.results_path(path).parent


def add_row_filters(p) -> None:
    """The row filters every analysis CLI takes (--device-type, --where KEY=VALUE)."""
    p.add_argument("--device-type", help="keep only rows of this device type")
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="keep only trials with this setting (repeatable); trials that differ in any "
        "other key than the compared one and the seed are never pooled as seeds",
    )
