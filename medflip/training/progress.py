"""What a run prints about itself: the progress line at each evaluation and the final table.

Formatting only (no torch, no Ray): engine.py hands over the metrics of a report, the
config and the learning rate; the single-run CLI prints `summary` before its JSON line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from medflip.config import Config
from medflip.training.schedule import progress_fraction

# The evaluation numbers worth a glance, in the order shown (the rest are in results.parquet).
EVAL_KEYS = ("zeroshot_acc", "retrieval_i2t_p1", "probe_acc")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def duration(seconds: float) -> str:
    """12s, 4m05s, 1h02m: short enough for a progress line."""
    if not _finite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def steps_are_a_budget(cfg: Config) -> bool:
    """optim.max_steps is a plan only when set, or when no time or FLOPs budget ends the run;
    else its default is the no-limit sentinel, and `step 27/100000` would read as a plan."""
    o = cfg.optim
    sentinel = type(o)().max_steps
    return o.max_steps != sentinel or not (o.time_budget_s > 0 or o.flops_budget > 0)


def where(m: Mapping, cfg: Config) -> str:
    """`step 120/20000` for a step budget (`step 120` when the steps are unbounded); with a
    time budget also `train 52/240s`, with a FLOPs budget `1.2e+12/6e+12 FLOPs`."""
    out = f"step {m['step']}"
    if steps_are_a_budget(cfg):
        out += f"/{cfg.optim.max_steps}"
    if cfg.optim.time_budget_s > 0:
        out += f" train {m['train_time_s']:.0f}/{cfg.optim.time_budget_s:.0f}s"
    if cfg.optim.flops_budget > 0 and _finite(m.get("train_flops")):
        out += f" {m['train_flops']:.3g}/{cfg.optim.flops_budget:.3g} FLOPs"
    return out


def eta_s(m: Mapping, cfg: Config) -> float:
    """Seconds left: training until the first budget runs out, plus the evaluations left.

    Steps left cost the interval's pace (pairs/s), FLOPs left the run's FLOPs per second so
    far; each evaluation costs the last one's time, and one comes at each multiple of
    `eval.every_share` of the budget still ahead (the last is the final evaluation).
    """
    o = cfg.optim
    pace = m.get("throughput", math.nan)
    steps_left = max(0, o.max_steps - m["step"])
    train_left = steps_left * o.batch_size / pace if _finite(pace) and pace > 0 else math.inf
    if o.time_budget_s > 0:
        train_left = min(train_left, max(0.0, o.time_budget_s - m["train_time_s"]))
    flops, spent = m.get("train_flops", math.nan), m["train_time_s"]
    if o.flops_budget > 0 and _finite(flops) and flops > 0 and spent > 0:
        train_left = min(train_left, max(0.0, o.flops_budget - flops) * spent / flops)
    if not math.isfinite(train_left):
        return math.nan
    p = progress_fraction(m["step"], spent, cfg, flops if _finite(flops) else 0.0)
    every = cfg.eval.every_share
    evals_left = math.floor(1 / every + 1e-9) - math.floor(p / every + 1e-9)
    eval_s = m.get("eval_time_s", 0.0)
    return train_left + max(0, evals_left) * (eval_s if _finite(eval_s) else 0.0)


def line(m: Mapping, cfg: Config, lr: float) -> str:
    """One evaluation's progress line: where, ETA, loss, learning rate, pace, evaluation."""
    parts = [where(m, cfg)]
    if m.get("status") == "running":
        parts.append(f"ETA {duration(eta_s(m, cfg))}")
    parts += [
        f"loss {m['loss']:.4f}",
        f"lr {lr:.2e}",
        f"tau {m['temperature']:.4f}",
        f"{m['throughput']:.0f} pairs/s",
    ]
    parts += [f"{k}={m[k]:.3f}" for k in EVAL_KEYS if _finite(m.get(k))]
    return " ".join([*parts, f"[{m['status']}]"])


# (metrics key, label, format) rows of the final table.
SUMMARY_ROWS = (
    ("status", "status", "{}"),
    ("step", "steps", "{}"),
    ("samples_seen", "pairs seen", "{:,}"),
    ("train_time_s", "training time", "duration"),
    ("train_flops", "training FLOPs", "{:.3g}"),
    ("wall_time_s", "wall time", "duration"),
    ("throughput", "pairs/s (last interval)", "{:.0f}"),
    ("loss", "loss (last interval)", "{:.4f}"),
    ("temperature", "temperature", "{:.4f}"),
    ("zeroshot_acc", "zero-shot accuracy (5 classes)", "{:.3f}"),
    ("zeroshot_f1", "zero-shot macro F1", "{:.3f}"),
    ("retrieval_i2t_p1", "image->text P@1", "{:.3f}"),
    ("retrieval_t2i_p1", "text->image P@1", "{:.3f}"),
    ("probe_acc", "linear probe accuracy", "{:.3f}"),
    ("device_hours", "device-hours", "{:.4f}"),
)


def summary(final: Mapping, extra: Mapping[str, str] = ()) -> str:
    """The final metrics as a two-column table; keys missing or non-finite are skipped."""
    rows = []
    for key, label, fmt in SUMMARY_ROWS:
        value = final.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        rows.append((label, duration(value) if fmt == "duration" else fmt.format(value)))
    rows += list(dict(extra).items())
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {text}" for label, text in rows)
