"""Evaluation sets: 5x200-style zero-shot, binary (RSNA analogue), retrieval pool, probe.

Synthetic: each set is scanned from its own block of study indices at or above
EVAL_OFFSET of the training corpus seed (training uses [0, data.num_train)), so patients
are disjoint by construction; selection reads the truth (what the image shows). Real
sources: evaluation records (`sources.partition`: official validate/test splits plus held-out
patients) in a seeded order, labels as coded with uncertain ones excluded; corrupt images
are skipped and counted. Built sets are cached on disk (uint8) and per process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from medflip.config import Config
from medflip.data import corpus as corpus_mod
from medflip.data import labels as labeling
from medflip.data import sources, synthetic
from medflip.data.cache import atomic_file, cache_dir, digest, locked
from medflip.data.corpus import normalize, to_uint8
from medflip.data.labels import OBSERVATIONS
from medflip.data.layouts.synthetic import EVAL_OFFSET  # the synthetic layout owns it
from medflip.data.prompts import CLASSES, binary_prompts, class_prompts  # noqa: F401 (re-export)

log = logging.getLogger("medflip.data")

_BLOCKS = {"fiveclass": 0, "probe_train": 1, "probe_test": 2, "binary": 3, "sentences": 4}
_BLOCK = 1_000_000  # indices per block: also the most a selection may scan
_IDX = {name: k for k, name in enumerate(OBSERVATIONS)}
_MENTION = re.compile(r"atelecta|cardiomegal|heart|cardiac|consolidat|edema|effusion", re.I)
_PARENTS = ("No Finding", "Lung Opacity", "Enlarged Cardiomediastinum", "Support Devices")


@dataclass
class EvalSets:
    """Evaluation tensors, images normalised like training ([N, 1, H, W] float32)."""

    fiveclass_images: torch.Tensor
    fiveclass_targets: torch.Tensor  # long [N], index into CLASSES
    binary_images: torch.Tensor
    binary_targets: torch.Tensor  # long [N], 1 = Consolidation, 0 = No Finding
    retrieval_images: torch.Tensor  # the 5x200 images (the paper's retrieval set)
    retrieval_image_classes: torch.Tensor  # long [N]
    retrieval_sentences: list[str]
    retrieval_sentence_classes: torch.Tensor  # long [M]
    probe_train_images: torch.Tensor
    probe_train_targets: torch.Tensor
    probe_test_images: torch.Tensor
    probe_test_targets: torch.Tensor
    patient_ids: dict[str, list[str]] = field(default_factory=dict)  # set name -> per image


def fiveclass_target(labels: np.ndarray) -> int | None:
    """Index into CLASSES if exactly one of them is positive and none uncertain, else None."""
    values = [labels[_IDX[c]] for c in CLASSES]
    if -1.0 in values or sum(v == 1.0 for v in values) != 1:
        return None
    return next(k for k, v in enumerate(values) if v == 1.0)


def binary_target(labels: np.ndarray) -> int | None:
    """1 = Consolidation positive, 0 = No Finding positive, None = neither (or both)."""
    cons, normal = labels[_IDX["Consolidation"]] == 1.0, labels[_IDX["No Finding"]] == 1.0
    return None if cons == normal else int(cons)


def sentence_class(sentence: str) -> int | None:
    """Index into CLASSES if `extract_labels` finds exactly that class positive in the
    sentence, no other class positive or uncertain, and no positive observation other
    than the class's CheXpert parents (Lung Opacity, Enlarged Cardiomediastinum)."""
    found = labeling.extract_labels(sentence)
    target = fiveclass_target(np.array([found[n] for n in OBSERVATIONS], np.float32))
    others = [n for n in OBSERVATIONS if n not in CLASSES and n not in _PARENTS]
    if target is None or any(found[n] == 1.0 for n in others):
        return None
    return target


Candidate = tuple[object, str, np.ndarray]  # (key, patient id, labels [14])


def select(
    what: str,
    cands: Iterable[Candidate],
    target: Callable,
    per_class: int,
    n_classes: int,
    load: Callable,
    taken: set[str],
    skipped: sources.SkipCounts,
):
    """First `per_class` loadable candidates of each class, skipping `taken` patients.

    Returns (uint8 [N, H, W], targets [N], patient ids); adds chosen patients to `taken`.
    """
    counts, images, targets, pids = [0] * n_classes, [], [], []
    for key, pid, labels in cands:
        t = target(labels)
        if t is None or counts[t] >= per_class or pid in taken:
            continue
        try:
            images.append(to_uint8(load(key)))
        except sources.ImageError as err:
            skipped.add("unreadable image", str(err).split(":")[0])
            continue
        counts[t] += 1
        targets.append(t)
        pids.append(pid)
        if min(counts) >= per_class:
            break
    if not images:
        raise sources.SourceError(
            f"no evaluation images for {what} (candidates need labels "
            "positive for exactly one class, none uncertain)"
        )
    if min(counts) < per_class:
        log.warning("%s evaluation set short of %d per class: %s", what, per_class, counts)
    taken.update(pids)
    return np.stack(images), np.array(targets, np.int64), pids


def _sentences(reports: Iterable[str], per_class: int) -> tuple[list[str], list[int]]:
    """`per_class` single-class sentences per class, one per class a report: distinct ones
    first (looking through at least `limit` reports for them), then repeats in order."""
    limit = max(2000, 10 * per_class)
    distinct: dict[int, dict[str, None]] = {k: {} for k in range(len(CLASSES))}
    repeats: dict[int, list[str]] = {k: [] for k in range(len(CLASSES))}
    for n, report in enumerate(reports):
        found: dict[int, list[str]] = {}
        for sentence in re.split(r"(?<=[.!?])\s+", report):
            k = sentence_class(sentence) if _MENTION.search(sentence) else None
            if k is not None:
                found.setdefault(k, []).append(sentence)
        for k, options in found.items():  # one per class a report, a new one if there is one
            new = [o for o in options if o not in distinct[k]]
            if new:
                distinct[k][new[0]] = None
            else:
                repeats[k].append(options[0])
        enough = all(len(distinct[k]) + len(repeats[k]) >= per_class for k in distinct)
        if all(len(d) >= per_class for d in distinct.values()) or (enough and n >= limit):
            break
    texts, classes = [], []
    for k in range(len(CLASSES)):
        pool = (list(distinct[k]) + repeats[k])[:per_class]
        if len(pool) < per_class:
            log.warning("retrieval sentences: only %d for %s", len(pool), CLASSES[k])
        texts += pool
        classes += [k] * len(pool)
    return texts, classes


def probe_per_class(per_class: int) -> int:
    """Probe train and test sets take half the 5x200 size each: a logistic regression on
    128-d features is stable at 100 per class, and the probe's image passes are the
    largest share of an evaluation's cost."""
    return max(1, per_class // 2)


def _synthetic_sets(seed: int, image_size: int, per_class: int) -> dict:
    data = synthetic.SyntheticCXR(seed, EVAL_OFFSET + len(_BLOCKS) * _BLOCK, image_size)

    def cands(block: str):
        start = EVAL_OFFSET + _BLOCKS[block] * _BLOCK
        for i in range(start, start + _BLOCK):
            study = data.study(i)
            yield i, study.patient_id, synthetic.truth(study)["labels"]

    def load(i):
        return data.images([i])[0]

    out, taken, skipped = {}, set(), sources.SkipCounts()
    for name, target, n in (
        ("fiveclass", fiveclass_target, 5),
        ("binary", binary_target, 2),
        ("probe_train", fiveclass_target, 5),
        ("probe_test", fiveclass_target, 5),
    ):
        count = probe_per_class(per_class) if name.startswith("probe") else per_class
        out[name] = select(name, cands(name), target, count, n, load, taken, skipped)
    start = EVAL_OFFSET + _BLOCKS["sentences"] * _BLOCK
    reports = (sources.training_text(data.reports([i])[0][0]) for i in range(start, start + _BLOCK))
    out["sentences"] = _sentences(reports, per_class)
    return out


def _real_sets(source: str, root: str, seed: int, image_size: int, per_class: int) -> dict:
    _, records = sources.partition(sources.cached_records(source, root).records)
    order = np.random.default_rng([seed, 5200]).permutation(len(records))
    if not len(records):
        raise sources.SourceError(
            f"{root}: no evaluation records (official validate/test "
            "splits or held-out patients) to build evaluation sets from"
        )

    def cands():
        return ((int(k), records[k].patient_id, records[k].labels) for k in order)

    def load(k):
        return sources.load_image(records[k], image_size)  # the prepared shards if any

    out, taken, skipped = {}, set(), sources.SkipCounts()
    for name in ("fiveclass", "probe_train", "probe_test"):  # patient-disjoint, in this order
        count = probe_per_class(per_class) if name.startswith("probe") else per_class
        try:
            out[name] = select(name, cands(), fiveclass_target, count, 5, load, taken, skipped)
        except sources.SourceError:
            if name == "fiveclass":
                raise
            # none left for the probe: data/checks.py refuses this unless eval.probe is off
            out[name] = (np.zeros((0, image_size, image_size), np.uint8), np.zeros(0, np.int64), [])
    out["binary"] = select("binary", cands(), binary_target, per_class, 2, load, set(), skipped)
    skipped.log(f"{source} evaluation sets")
    studies = {records[k].study_id: records[k].report for k in order if records[k].report}
    out["sentences"] = _sentences(studies.values(), per_class)
    if not out["sentences"][0]:
        log.warning("%s: no reports to draw retrieval sentences from; using class prompts", source)
        texts = [class_prompts(c, per_class, seed) for c in CLASSES]
        out["sentences"] = (
            [t for ts in texts for t in ts],
            [k for k, ts in enumerate(texts) for _ in ts],
        )
    return out


def _save(path: str, sets: dict) -> None:
    arrays = {}
    for name in ("fiveclass", "binary", "probe_train", "probe_test"):
        images, targets, pids = sets[name]
        arrays |= {
            f"{name}_images": images,
            f"{name}_targets": targets,
            f"{name}_pids": np.array(pids, dtype=str),
        }
    texts, classes = sets["sentences"]
    arrays |= {"sentences": np.array(texts, dtype=str), "sentence_classes": np.array(classes)}
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _tensors(npz) -> EvalSets:
    def images(name):  # uint8 [N, H, W] -> normalised float32 [N, 1, H, W]
        return normalize(torch.from_numpy(npz[f"{name}_images"]).float().div_(255.0))[:, None]

    def targets(name):
        return torch.from_numpy(npz[f"{name}_targets"]).long()

    five = images("fiveclass")
    return EvalSets(
        five,
        targets("fiveclass"),
        images("binary"),
        targets("binary"),
        five,
        targets("fiveclass"),
        [str(s) for s in npz["sentences"]],
        torch.from_numpy(npz["sentence_classes"]).long(),
        images("probe_train"),
        targets("probe_train"),
        images("probe_test"),
        targets("probe_test"),
        {
            n: [str(p) for p in npz[f"{n}_pids"]]
            for n in ("fiveclass", "binary", "probe_train", "probe_test")
        },
    )


@functools.lru_cache(maxsize=4)
def _cached(source: str, root: str, seed: int, image_size: int, per_class: int) -> EvalSets:
    code = corpus_mod.code_version(
        *corpus_mod.GENERATOR_CODE, "layouts/*.py", "prompts.py", "corpus.py", "benchmark.py"
    )
    where = [source]
    if source != "synthetic":  # the records themselves, so changed data is never stale
        loaded = sources.cached_records(source, root)
        where += [os.path.abspath(root), digest(r.image_path for r in loaded.records)]
    key = digest(["evalsets-v1", *where, str(seed), str(image_size), str(per_class), code])
    path = os.path.join(cache_dir(), f"evalsets-{key}.npz")
    if not os.path.exists(path):
        with locked(path):
            if not os.path.exists(path):
                sets = (
                    _synthetic_sets(seed, image_size, per_class)
                    if source == "synthetic"
                    else _real_sets(source, root, seed, image_size, per_class)
                )
                _save(path, sets)
    with np.load(path) as npz:
        return _tensors(npz)


def val_test_split(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation indices, test indices) of a class-balanced set: alternate items of each
    class, so the halves are disjoint, the same size per class and fixed by the set.

    Each half is in class-interleaved order (the first item of every class, then the second
    ...), so every prefix of C items per round is class-balanced: cheap curve points score a
    prefix (`eval.curve_items`, `eval.val_items`) and pair item by item with full ones.
    Selection (searchers, schedulers, the checkpoint an analysis picks) reads the
    validation half; everything reported is measured on the test half.
    """
    rank = torch.zeros_like(targets)
    for c in targets.unique():
        where = (targets == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    order = torch.argsort(rank * (int(targets.max()) + 1) + targets, stable=True)  # [N]
    return order[rank[order] % 2 == 0], order[rank[order] % 2 == 1]


def build_eval_sets(cfg: Config) -> EvalSets:
    """The evaluation sets for `cfg` (per process and on-disk cached; treat as read-only).

    Depends on data.source, data.root, data.seed, data.image_size and data.eval_per_class.
    """
    d = cfg.data
    if d.source == "synthetic" and d.num_train > EVAL_OFFSET:
        raise ValueError(
            f"data.num_train: {d.num_train} would overlap the evaluation studies "
            f"(indices from {EVAL_OFFSET})"
        )
    return _cached(d.source, d.root, d.seed, d.image_size, d.eval_per_class)


def eval_prompts(cfg: Config) -> tuple[list[list[str]], list[list[str]]]:
    """(five-class prompts [5][P] in CLASSES order, binary prompts [2][P]: No Finding,
    Consolidation), P = eval.prompts_per_class; the same in every run of a corpus seed."""
    p, seed = cfg.eval.prompts_per_class, cfg.data.seed
    return [class_prompts(c, p, seed) for c in CLASSES], binary_prompts(p, seed)
