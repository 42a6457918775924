"""Data checks run before any work (before Ray starts, before `medflip.train` builds a model).

One `DataError` per problem, one line naming the key or path and what is missing or short:
the dataset root's layout (the reader's own `SourceError`), the usable records per split,
whether a global batch of training pairs and each evaluation set at `data.eval_per_class`
can be built, the tokenizer path, and fp16 on a CPU. The reads are the ones training does
(`sources.cached_records`, per process), so a launch that passes pays for them once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter

import numpy as np

from medflip.config import Config, ConfigError
from medflip.data import eval_sets as benchmark
from medflip.data import sources
from medflip.device.precision import precision_problem
from medflip.registry import DATA_SOURCES


class DataError(ConfigError):
    """A dataset, tokenizer or precision problem found before any work; one line. A
    `ConfigError`, so every CLI that reports bad config reports it the same way."""


def check(cfg: Config, device: str | None = None) -> None:
    """Raise `DataError` for the first problem with `cfg`'s data on `device` ("cpu" or
    "cuda"; None = this machine's: CUDA if torch sees a GPU)."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    problem = precision_problem(cfg.optim.precision, device)
    if problem:
        raise DataError(f"optim.precision: {problem}")
    check_tokenizer(cfg)
    if DATA_SOURCES[cfg.data.source].embedded:
        return  # an embedded corpus: every size is available by construction
    d = cfg.data
    try:
        loaded = sources.cached_records(d.source, d.root, d.label_text)
    except sources.SourceError as err:
        raise DataError(f"data.root: {err}") from None
    train, held = sources.partition(loaded.records)
    splits = _split_counts(loaded.records)
    pairs = max(1, round(d.fraction * len(train))) if train else 0
    if pairs < cfg.optim.batch_size:
        raise DataError(
            f"{d.root}: {pairs} training pairs (data.fraction={d.fraction} of {len(train)} "
            f"frontal training records; splits {splits}) is fewer than one batch "
            f"(optim.batch_size={cfg.optim.batch_size})"
        )
    if not held:
        raise DataError(
            f"{d.root}: no evaluation records (official validate/test splits or held-out "
            f"patients; splits {splits})"
        )
    short = eval_shortfall(held, d.seed, d.eval_per_class, probe=cfg.eval.probe)
    if short:
        raise DataError(f"{d.root}: {short}")


def check_sweep(cfg: Config, gpus_per_worker: float | None) -> None:
    """`check` for a sweep's base config before Ray starts; the workers' device is known
    from --gpus-per-worker (None: not yet, fp16 unchecked)."""
    device = None if gpus_per_worker is None else ("cuda" if gpus_per_worker > 0 else "cpu")
    check(cfg, device or "cuda")


def check_tokenizer(cfg: Config) -> None:
    path = cfg.data.tokenizer
    if not path:
        return
    if not os.path.isdir(path):
        raise DataError(f"data.tokenizer: {path!r} is not an existing directory")
    from medflip.data.tokenizer import pretrained_tokenizer

    try:
        pretrained_tokenizer(path, cfg.data.max_text_len)
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data.tokenizer: {path!r} has no loadable tokenizer ({first})") from None


def _split_counts(records: list[sources.Record]) -> str:
    counts = Counter(r.split for r in records)
    return ", ".join(f"{s} {counts.get(s, 0)}" for s in sources.SPLITS)


def _sets(
    held: list[sources.Record], seed: int, per_class: int, probe: bool = True
) -> dict[str, list[int]]:
    """Images per class of each evaluation set, selected as `benchmark._real_sets` selects
    (same order, same patient-disjoint chain) but without decoding the images. The probe
    sets are drawn after the 5-class one, so leaving them out (`probe` off: the linear
    probe never runs) changes no other set."""
    order = np.random.default_rng([seed, 5200]).permutation(len(held))
    cands = [(int(k), held[k].patient_id, held[k].labels) for k in order]
    out, taken, skipped = {}, set(), sources.SkipCounts()

    def counts(name, target, n, want, taken):
        try:
            _, targets, _ = benchmark.select(
                name, cands, target, want, n, lambda k: np.zeros((1, 1)), taken, skipped
            )
        except sources.SourceError:
            return [0] * n
        return np.bincount(targets, minlength=n).tolist()

    for name in ("fiveclass", "probe_train", "probe_test")[: 3 if probe else 1]:
        want = benchmark.probe_per_class(per_class) if name.startswith("probe") else per_class
        out[name] = (counts(name, benchmark.fiveclass_target, 5, want, taken), want)
    out["binary"] = (counts("binary", benchmark.binary_target, 2, per_class, set()), per_class)
    return out


@contextlib.contextmanager
def _quiet():
    """The dry selections' "set short" warnings are this check's findings, said once."""
    logger = logging.getLogger("medflip.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fits(held, seed: int, per_class: int, probe: bool) -> bool:
    return all(min(c) >= want for c, want in _sets(held, seed, per_class, probe).values())


def eval_shortfall(
    held: list[sources.Record], seed: int, per_class: int, probe: bool = True
) -> str:
    """ "" if every evaluation set has `per_class` images per class, else what is short and
    the largest data.eval_per_class that fits (the probe sets only when `probe` runs)."""
    with _quiet():
        sets = _sets(held, seed, per_class, probe)
        short = {n: (c, w) for n, (c, w) in sets.items() if min(c) < w}
        if not short:
            return ""
        lo, hi = 0, per_class - 1  # the largest size that fits, by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _fits(held, seed, mid, probe) else (lo, mid - 1)
    name, (have, want) = next(iter(short.items()))
    names = benchmark.CLASSES if len(have) == 5 else ("No Finding", "Consolidation")
    got = ", ".join(f"{c} {k}" for c, k in zip(names, have, strict=True))
    fix = f"set data.eval_per_class={lo}" if lo else "no size fits; add labelled studies"
    return (
        f"evaluation set {name} needs {want} images per class (data.eval_per_class="
        f"{per_class}) but has {got} among {len(held)} evaluation records; {fix}"
    )
