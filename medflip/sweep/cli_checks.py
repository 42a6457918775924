"""Sweep command-line checks that need more than the values: where a value came from
(`--config FILE` or `--set`), whether a flag was given at all, which machine will run.

Each returns what launch.make_plan uses or raises `PlanError` with one line naming the
flag or file; nothing here imports Ray.
"""

from __future__ import annotations

import argparse

from medflip.config import ConfigError, load_file
from medflip.sweep.plan import PlanError
from medflip.sweep.spaces import Space


def seeds_count(args: argparse.Namespace, default: int) -> int:
    """`--seeds K` as given; not given: 1 for `--smoke-test`, else `default`."""
    if args.seeds is not None:
        return args.seeds
    return 1 if args.smoke_test else default


def searched_in_config_file(space: Space, config_file: str | None) -> None:
    """A searched key set in `--config FILE` is the file's fault, not `--set`'s: name it."""
    if not config_file:
        return
    try:
        from_file = load_file(config_file)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None
    clash = sorted(set(from_file) & set(space.axes))
    if clash:
        raise PlanError(
            f"--config {config_file}: sets {clash[0]}, which the {space.name} sweep searches; "
            "remove it from the file or use another sweep"
        )


def worker_gpus(gpus_per_worker: float | None, address: str | None) -> float | None:
    """GPUs per worker as far as they are known before Ray starts: the flag, else this
    machine's (a local Ray gets every GPU torch sees), else None (a cluster: not yet)."""
    if gpus_per_worker is not None or address:
        return gpus_per_worker
    import torch  # after argparse: --help stays fast

    return 1.0 if torch.cuda.device_count() > 0 else 0.0
