"""Pretraining pairs: tokenizer, torch Dataset (paired and deliberately unpaired), loader.

Text for training is the report's IMPRESSION then FINDINGS (`sources.training_text`):
EXAMINATION / INDICATION lines are boilerplate that says nothing about the image, and the
impression goes first so that truncation keeps it. Images are normalised once, here
(`normalize`, IMAGE_MEAN / IMAGE_STD from corpus.py); there are no random augmentations, so
an item is a pure function of its index and loaders are exactly reproducible.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from medflip.config import Config
from medflip.data import layouts, sources
from medflip.data.cache import atomic_file, digest
from medflip.data.corpus import (  # noqa: F401
    IMAGE_MEAN,
    IMAGE_STD,
    Corpus,
    normalize,
    records_corpus,
    synthetic_corpus,
)
from medflip.data.prompts import labels_to_text, prompt_corpus
from medflip.data.sampler import ShardedBatchSampler
from medflip.data.text_budget import PRIORITY_KEY, finding_priority
from medflip.data.text_rows import text_only_rows
from medflip.data.tokenizer import corpus_tokenizer, pretrained_tokenizer, tokenizer_hash

log = logging.getLogger("medflip.data")


@functools.lru_cache(maxsize=2)
def _train_corpus(
    source: str, root: str, seed: int, num_train: int, image_size: int, label_text: str
) -> Corpus:
    layout = layouts.get(source)
    if layout.train_corpus is not None:  # an embedded corpus builds its own
        return layout.train_corpus(seed, num_train, image_size, label_text)
    train, _ = sources.partition(sources.cached_records(source, root, label_text).records)
    if not train:
        raise sources.SourceError(f"{root}: no training records (all patients are held out)")
    made = sum(r.report is None for r in train)
    if made:  # CheXpert has no reports: text from labels, MedCLIP's way of using such images
        log.info(
            "%s: %d of %d training images have no report; using text made from labels",
            source,
            made,
            len(train),
        )
    texts = [r.report if r.report else labels_to_text(r.labels, k) for k, r in enumerate(train)]
    return records_corpus(train, image_size, texts)


def train_corpus(cfg: Config) -> Corpus:
    """The studies training draws from (per process cached): synthetic indices
    [0, data.num_train) or the frontal training records of a real source."""
    d = cfg.data
    return _train_corpus(d.source, d.root, d.seed, d.num_train, d.image_size, d.label_text)


def build_tokenizer(cfg: Config):
    """`data.tokenizer` (a local dir), else a local `model.text` checkpoint's tokenizer,
    else WordPiece (vocab `data.vocab_size`) trained on the corpus and the class prompts."""
    path = cfg.data.tokenizer or (cfg.model.text if os.path.isdir(cfg.model.text) else "")
    if path:
        return pretrained_tokenizer(path, cfg.data.max_text_len)
    texts = layouts.get(cfg.data.source).tokenizer_texts(train_corpus(cfg).texts)
    return corpus_tokenizer([*texts, *prompt_corpus()], cfg.data.vocab_size, cfg.data.max_text_len)


def pair_assignment(
    n: int, fraction: float, paired: float, seed: int, groups: np.ndarray | None = None
):
    """Which image goes with which text: (image_index [M], text_index [M], paired [M] bool).

    A seeded permutation of the n studies; its first round(fraction * n) are used (so a
    smaller fraction is a subset of a larger one) and of those the first round(paired * M)
    stay paired. The rest are unpaired: laid out study-group by study-group in a shuffled
    order and each image given the text `shift` places on (shift = the largest group), so
    image and text always come from different studies when no study holds over half of
    them. A single leftover cannot be mismatched and stays paired.
    """
    rng = np.random.default_rng([seed, 4242])
    order = rng.permutation(n)
    used = order[: max(1, round(fraction * n))]
    n_pair = round(paired * len(used))
    if len(used) - n_pair == 1:
        n_pair += 1
    rest = used[n_pair:]
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(rest):
        group_keys = rng.permutation(int(groups.max()) + 1)[groups[rest]]
        rest = rest[np.argsort(group_keys, kind="stable")]  # groups contiguous, random order
        shift = int(np.unique(groups[rest], return_counts=True)[1].max())
        texts = np.roll(rest, -shift)
        same = int((groups[texts] == groups[rest]).sum())
        if same:
            log.warning(
                "unpaired share: %d of %d texts still come from the image's study", same, len(rest)
            )
    else:
        texts = rest
    image_index = np.concatenate([used[:n_pair], rest]).astype(np.int64)
    text_index = np.concatenate([used[:n_pair], texts]).astype(np.int64)
    is_paired = np.arange(len(used)) < n_pair
    return image_index, text_index, is_paired


def tokenize(corpus: Corpus, tokenizer, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids int32 [N, T], attention_mask uint8 [N, T]) of the corpus texts; kept in
    the corpus's prepared entry, keyed by the tokenizer and every text, so each worker of
    each trial loads them instead of re-tokenising."""

    def run():
        tok = tokenizer(
            corpus.texts,
            padding="max_length",
            truncation=True,
            max_length=max_len,
            return_tensors="np",
        )
        return tok["input_ids"].astype(np.int32), tok["attention_mask"].astype(np.uint8)

    if not corpus.tokens_dir:
        return run()
    key = digest(["tokens-v1", tokenizer_hash(tokenizer), str(max_len), *corpus.texts])
    path = os.path.join(corpus.tokens_dir, f"tokens-{key}.npz")
    if not os.path.isfile(path):
        ids, mask = run()
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, input_ids=ids, attention_mask=mask)
    with np.load(path) as npz:
        return npz["input_ids"], npz["attention_mask"]


def sentence_priority(corpus: Corpus, tokenizer, max_len: int, ids: np.ndarray) -> np.ndarray:
    """uint8 [N, T] `text_budget.finding_priority` of the corpus texts, kept beside their
    tokens in the prepared entry (labelling every sentence costs ~1 ms a report)."""
    if not corpus.tokens_dir:
        return finding_priority(corpus.texts, tokenizer, max_len, ids)
    key = digest(["priority-v1", tokenizer_hash(tokenizer), str(max_len), *corpus.texts])
    path = os.path.join(corpus.tokens_dir, f"priority-{key}.npy")
    if not os.path.isfile(path):
        ranks = finding_priority(corpus.texts, tokenizer, max_len, ids)
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, ranks)
    return np.load(path)


class PretrainDataset(Dataset):
    """Item m: the image of study image_index[m] with the text of study text_index[m].

    Keys: image float32 [1, H, W] (normalised), input_ids long [T], attention_mask long [T]
    (T = data.max_text_len, padded/truncated), labels float32 [14] (the text's report
    codes: soft targets), image_labels float32 [14] (the image side of the soft targets:
    its own study's report labels on every source, never the synthetic truth), paired
    bool (False: the text is another study's),
    has_image bool; with `text_priority` also text_priority uint8 [T] (each token's sentence
    rank, text_budget.finding_priority: the findings policy). Rows after the pairs are the
    `text_only` corpus's texts (no image:
    image is float32 [0, H, W], has_image False; `collate` stacks only real images).
    An image that cannot be decoded is counted in `skipped` (per process) and the next
    row is returned instead.
    """

    def __init__(
        self,
        corpus: Corpus,
        tokenizer,
        max_len: int,
        image_index: np.ndarray,
        text_index: np.ndarray,
        paired: np.ndarray,
        text_only: Corpus | None = None,
        text_priority: bool = False,
    ):
        self.corpus = corpus
        parts = [corpus] if text_only is None else [corpus, text_only]
        tokens = [tokenize(c, tokenizer, max_len) for c in parts]
        self.priority = None  # [N+X, T] uint8, the findings policy's sentence ranks
        if text_priority:
            ranks = [
                sentence_priority(c, tokenizer, max_len, ids)
                for c, (ids, _) in zip(parts, tokens, strict=True)
            ]
            self.priority = torch.from_numpy(np.concatenate(ranks))
        self.input_ids = torch.from_numpy(np.concatenate([t[0] for t in tokens]))  # [N+X, T]
        self.attention_mask = torch.from_numpy(np.concatenate([t[1] for t in tokens]))
        self.labels = torch.from_numpy(np.concatenate([c.labels for c in parts]))  # [N+X, 14]
        self.image_labels = torch.from_numpy(np.concatenate([c.image_labels for c in parts]))
        extra = len(text_only) if text_only is not None else 0  # text-only rows: image -1
        self.image_index = np.concatenate([image_index, np.full(extra, -1, np.int64)])
        self.text_index = np.concatenate([text_index, len(corpus) + np.arange(extra)])
        self.paired = np.concatenate([paired, np.zeros(extra, bool)])
        self.skipped = sources.SkipCounts()
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.image_index)

    def _pixels(self, m: int) -> tuple[int, np.ndarray]:
        """(row, image) of the first row from m on whose image decodes or that has none
        (float32 [0, H, W]: a text-only row)."""
        for step in range(len(self)):
            k = (m + step) % len(self)
            j = int(self.image_index[k])
            if j < 0:
                return k, np.zeros((0, self.corpus.image_size, self.corpus.image_size), np.float32)
            if j in self._bad:
                continue
            try:
                return k, self.corpus.image(j)
            except sources.ImageError as err:
                self._bad.add(j)
                self.skipped.add("unreadable image", self.corpus.paths[j])
                log.warning(
                    "skipping %s (%d unreadable so far in this process)",
                    err,
                    self.skipped.counts["unreadable image"],
                )
        raise RuntimeError("no training image could be decoded")

    def __getitem__(self, m: int) -> dict:
        k, pixels = self._pixels(int(m))
        i, t = int(self.image_index[k]), int(self.text_index[k])
        extra = {} if self.priority is None else {PRIORITY_KEY: self.priority[t]}
        return {
            **extra,
            "image": normalize(torch.from_numpy(pixels)).reshape(-1, *pixels.shape[-2:]),
            "input_ids": self.input_ids[t].long(),
            "attention_mask": self.attention_mask[t].long(),
            "labels": self.labels[t],
            "image_labels": self.image_labels[i if i >= 0 else t],  # unused without an image
            "paired": bool(self.paired[k]),
            "has_image": i >= 0,
        }


def collate(items: list[dict]) -> dict:
    """Stack item dicts: image [B_i, 1, H, W] (only the B_i rows with an image), input_ids
    [B, T], ..., paired and has_image bool [B]."""
    images = [item["image"] for item in items]
    batch = default_collate([{k: v for k, v in item.items() if k != "image"} for item in items])
    real = [im for im in images if len(im)]
    batch["image"] = (
        torch.stack(real) if real else images[0].new_zeros((0, 1, *images[0].shape[-2:]))
    )
    return batch


def build_train_dataset(cfg: Config, tokenizer) -> PretrainDataset:
    """The pretraining pairs of `cfg`: data.fraction of the corpus, data.paired of them
    paired (seeded by data.seed, so every training seed sees the same subset), then the
    text-only rows (`text_rows.text_only_rows`: data.text_only, label-matched kinds)."""
    corpus = train_corpus(cfg)
    image_index, text_index, paired = pair_assignment(
        len(corpus), cfg.data.fraction, cfg.data.paired, cfg.data.seed, corpus.groups
    )
    log.info(
        "training pairs: %d (%d paired) of %d studies", len(image_index), paired.sum(), len(corpus)
    )
    extra = text_only_rows(cfg)  # reports without an image (label-matched kinds only)
    priority = cfg.mask.text_tokens > 0 and cfg.mask.text_policy == "findings"
    return PretrainDataset(
        corpus, tokenizer, cfg.data.max_text_len, image_index, text_index, paired, extra,
        text_priority=priority,
    )  # fmt: skip


class _InOrder(torch.utils.data.Sampler):
    """Global batches 0..B-1, B..2B-1, ... in order (this rank takes every world_size-th
    item of each, like ShardedBatchSampler), from `start_batch` on."""

    def __init__(self, n, batch_size, drop_last, start_batch, rank, world_size):
        stop = n - n % batch_size if drop_last else n
        self.batches = [
            list(range(a, min(a + batch_size, stop)))[rank::world_size]
            for a in range(0, stop, batch_size)
        ][start_batch:]

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    workers: int,
    shuffle: bool = True,
    drop_last: bool = True,
    start_batch: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A reproducible loader over one epoch: `batch_size` is global (each of `world_size`
    ranks gets its share); the order depends only on (seed, epoch), so starting at
    `start_batch` resumes mid-epoch exactly (shuffled order: `sampler.ShardedBatchSampler`)."""
    if shuffle and drop_last:
        batches = ShardedBatchSampler(
            len(dataset), batch_size, seed, epoch, start_batch, rank, world_size
        )
    elif shuffle:
        raise ValueError("make_loader: shuffle=True needs drop_last=True (whole global batches)")
    else:
        batches = _InOrder(len(dataset), batch_size, drop_last, start_batch, rank, world_size)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
