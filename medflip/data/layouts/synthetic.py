"""Layout `synthetic`: the embedded procedural corpus (no root; `medflip.data.synthetic`).

Named in `medflip.registry.DATA_SOURCES`. Its training studies are indices
[0, data.num_train) of corpus `data.seed`, rendered once into the on-disk cache; the
evaluation studies start at `benchmark.EVAL_OFFSET`, so they are disjoint by construction.
"""

from __future__ import annotations

import numpy as np

from medflip.data.corpus import synthetic_corpus
from medflip.data.layouts import Layout
from medflip.data.records import DEFAULT_LABEL_TEXT, text_labels
from medflip.data.synthetic import SyntheticCXR

TOKENIZER_TEXTS = 4000  # synthetic reports the WordPiece vocabulary is learned from
EVAL_OFFSET = 10_000_000  # first evaluation index; data.num_train must stay below


def policy_labels(seed: int, num_train: int, label_text: str) -> np.ndarray:
    """float32 [N, 14]: the synthetic reports relabelled by the extractor under `label_text`
    (the generator's own codes cover every sentence, i.e. findings + impression)."""
    reports = SyntheticCXR(seed, num_train).reports(range(num_train))
    return np.stack([text_labels(text, label_text) for text, _ in reports])


def train_corpus(seed: int, num_train: int, image_size: int, label_text: str):
    if num_train > EVAL_OFFSET:
        raise ValueError(
            f"data.num_train: {num_train} would reach the evaluation studies "
            f"(indices from {EVAL_OFFSET})"
        )
    corpus = synthetic_corpus(seed, 0, num_train, image_size)
    if label_text != DEFAULT_LABEL_TEXT:
        corpus.labels = policy_labels(seed, num_train, label_text)
    return corpus


def tokenizer_texts(texts: list[str]) -> list[str]:
    return texts[:TOKENIZER_TEXTS]  # templated reports: a few thousand hold the vocabulary


LAYOUT = Layout(train_corpus=train_corpus, tokenizer_texts=tokenizer_texts)
