"""One module per data layout, each defining its `LAYOUT`; the names, and what the config
needs to know of each (embedded, what the root holds), are `medflip.registry.DATA_SOURCES`,
which imports a layout only when it is used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medflip.data.records import Record, SkipCounts
from medflip.registry import DATA_SOURCES


def _unique_sorted(texts: list[str]) -> list[str]:
    return sorted(set(texts))


@dataclass(frozen=True)
class Layout:
    """How a source's data is read: records from a root (`read`), or, for an embedded
    source, its own training corpus (`train_corpus`)."""

    read: Callable[[str, SkipCounts, str], list[Record]] | None = None  # (root, skips, policy)
    # embedded: (seed, num_train, image_size, label_text) -> medflip.data.corpus.Corpus
    train_corpus: Callable | None = None
    # the corpus texts a WordPiece vocabulary is learned from
    tokenizer_texts: Callable[[list[str]], list[str]] = _unique_sorted


def get(source: str) -> Layout:
    """The layout of `data.source` (its module imported now)."""
    return DATA_SOURCES.load(source)
