"""What a resumed run may change: the one rule both `medflip.train` and the sweeps follow.

A resume continues weights, optimiser state and counters trained under the saved config.
Every row it writes is labelled with the requested config, so any difference that changes
how the run trains would label rows with a setting they were not trained with. Only the
keys below may differ; anything else is refused before any work, naming each key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

# key -> why changing it on resume keeps every row true to how it was trained.
SAFE_TO_CHANGE: dict[str, str] = {
    "optim.time_budget_s": "a budget: extends (or ends) the same run; the rows record it",
    "optim.max_steps": "a budget: extends (or ends) the same run; the rows record it",
    "optim.flops_budget": "a budget: extends (or ends) the same run; the rows record it",
    "eval.every_share": "when to evaluate and checkpoint, not how to train",
}


class ResumeMismatch(ValueError):
    """The resumed run was started with other settings; the message lists each one."""


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else repr(value)


_ABSENT = object()


def differences(
    saved: Mapping[str, Any],
    requested: Mapping[str, Any],
    safe: Mapping[str, str] | set[str] = SAFE_TO_CHANGE,
    known: set[str] | None = None,
) -> list[str]:
    """`key: saved X, requested Y` for each differing key outside `safe`, in requested order.

    `known` (default: every key of `requested`) limits the comparison to keys that still
    exist: a key the code no longer has cannot change how the run trains.
    """
    keys = list(requested) + [k for k in saved if k not in requested]
    if known is not None:
        keys = [k for k in keys if k in known]
    out = []
    for key in keys:
        if key in safe:
            continue
        before, after = saved.get(key, _ABSENT), requested.get(key, _ABSENT)
        if before != after:
            out.append(f"{key}: saved {_show(before)}, requested {_show(after)}")
    return out


def check(
    saved: Mapping[str, Any],
    requested: Mapping[str, Any],
    where: str,
    safe: Mapping[str, str] | set[str] = SAFE_TO_CHANGE,
    known: set[str] | None = None,
    fresh: str = "another --out",
) -> None:
    """Raise `ResumeMismatch` listing every unsafe difference (nothing is done before)."""
    diffs = differences(saved, requested, safe, known)
    if not diffs:
        return
    allowed = ", ".join(safe) if safe else "none"
    raise ResumeMismatch(
        f"--resume: {where} was started with other settings; refusing to continue "
        f"({len(diffs)} differing): " + "; ".join(diffs) + f". Safe to change on resume: "
        f"{allowed}. Resume without these changes, or start a new run ({fresh})."
    )


def saved_config(checkpoint_dir: str) -> dict[str, Any]:
    """The flat config a checkpoint was trained with (checkpoint.save writes config.json).

    Read as plain JSON, without importing torch, so a refused resume answers at once.
    """
    path = os.path.join(checkpoint_dir, "config.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ResumeMismatch(
            f"--resume: cannot read {path} ({exc}), so the settings the checkpoint was "
            "trained with are unknown; refusing to continue"
        ) from None
