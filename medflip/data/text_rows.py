"""Text-only training rows: reports whose image files are absent (MedCLIP's decoupling).

The readers keep such a report as a text-only record (`LoadedSource.text_only`) instead of
dropping it. With `data.text_only` on and a label-matched loss kind (`loss.kind=medclip`,
whose soft targets come from label vectors, not from which image a text came with) each
becomes a batch row with a text and no image; the image tower never sees a blank for it.
Identity-target kinds (clip, medflip, the SVD pair term) have no target for a text without
an image, so for them the rows are not built at all.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from medflip.config import Config
from medflip.data import sources
from medflip.data.corpus import Corpus
from medflip.registry import DATA_SOURCES, LOSS_KINDS

log = logging.getLogger("medflip.data")


@functools.lru_cache(maxsize=2)
def _text_only_corpus(source: str, root: str, label_text: str, image_size: int) -> Corpus:
    """The training patients' text-only records as a corpus without pixels: patients held
    out for evaluation (`sources.partition`, on images and on these) are left out."""
    loaded = sources.cached_records(source, root, label_text)
    _, held = sources.partition(loaded.records)
    held_patients = {r.patient_id for r in held}
    train, _ = sources.partition(loaded.text_only)
    train = [r for r in train if r.patient_id not in held_patients]
    labels = [r.labels if r.text_labels is None else r.text_labels for r in train]
    labels = np.stack(labels).astype(np.float32) if labels else np.zeros((0, 14), np.float32)
    tokens_dir = train[0].prepared if train else ""
    groups = np.arange(len(train), dtype=np.int64)
    return Corpus([r.report for r in train], labels, labels, groups, image_size, None, None,
                  tokens_dir)  # fmt: skip


def text_only_rows(cfg: Config) -> Corpus | None:
    """The text-only rows training uses under `cfg` (None: none): data.fraction of them
    (a seeded prefix, so a smaller fraction is a subset of a larger one, as for pairs)."""
    d = cfg.data
    if DATA_SOURCES[d.source].embedded:
        return None
    corpus = _text_only_corpus(d.source, d.root, d.label_text, d.image_size)
    if not len(corpus):
        return None
    if not d.text_only or not LOSS_KINDS[cfg.loss.kind].label_matched:
        why = "data.text_only=false" if not d.text_only else f"loss.kind={cfg.loss.kind}"
        log.info("%s: %d reports without an image not used (%s)", d.source, len(corpus), why)
        return None
    order = np.random.default_rng([d.seed, 4243]).permutation(len(corpus))
    keep = np.sort(order[: max(1, round(d.fraction * len(corpus)))])
    log.info("%s: %d of %d reports without an image train as text-only rows (data.text_only)",
             d.source, len(keep), len(corpus))  # fmt: skip
    return Corpus(
        [corpus.texts[k] for k in keep], corpus.labels[keep], corpus.image_labels[keep],
        corpus.groups[keep], corpus.image_size, None, None, corpus.tokens_dir,
    )  # fmt: skip
