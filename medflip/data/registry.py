"""Data sources by name (`data.source`): each layout module in `medflip/data/layouts/`
registers one `Source`; the config's allowed values are this registry's names.

A source either reads records from a root (`read`) or is embedded and builds its own
training corpus (`train_corpus`, the synthetic one); what differs between sources is an
attribute here, not a branch on the name elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from medflip.data.records import Record, SkipCounts, SourceError


def _unique_sorted(texts: list[str]) -> list[str]:
    return sorted(set(texts))


@dataclass(frozen=True)
class Source:
    name: str
    root: str  # what data.root holds, for messages ("" = no root: an embedded corpus)
    read: Callable[[str, SkipCounts, str], list[Record]] | None = None  # (root, skips, policy)
    root_may_be_file: bool = False  # a manifest table itself may be data.root
    # embedded: (seed, num_train, image_size, label_text) -> medflip.data.corpus.Corpus
    train_corpus: Callable | None = None
    # the corpus texts a WordPiece vocabulary is learned from
    tokenizer_texts: Callable[[list[str]], list[str]] = _unique_sorted

    @property
    def embedded(self) -> bool:
        return self.read is None

    def root_problem(self, root: str) -> str:
        """ "" if `root` suits this source, else what is wrong (for `data.root: ...`)."""
        if self.embedded:
            return ""
        if not root:
            return f"required for data.source={self.name!r} (expected {self.root})"
        if os.path.isdir(root) or (self.root_may_be_file and os.path.isfile(root)):
            return ""
        what = "directory or manifest file" if self.root_may_be_file else "directory"
        return f"{root!r} is not an existing {what}"


SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    if source.name in SOURCES:
        raise ValueError(f"data source {source.name!r} is registered twice")
    SOURCES[source.name] = source
    return source


def get(name: str) -> Source:
    if name not in SOURCES:
        raise SourceError(f"data.source: {name!r} is not one of {', '.join(SOURCES)}")
    return SOURCES[name]
