"""Names by kind -- data sources, loss kinds, variants, sweep spaces -- and what each is.

The bottom of the import graph: `medflip.config` reads its allowed `data.source` and
`loss.kind` values from here, so this module imports neither torch nor any other medflip
module. A name's properties (a loss kind is label-matched, a source is embedded) are
attributes of its entry, not branches on the name elsewhere. Code that needs torch or a
reader is named as "module:attr" and imported on first `load()`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad key or value -- an unknown registered name included; the message names the key."""


class Registry(Generic[T]):
    """name -> entry for one kind of name (`key`: the config key or CLI word it answers to).

    Entries come as a mapping or as objects with a `.name`; a name given twice is refused.
    """

    def __init__(self, key: str, entries: Mapping[str, T] | Iterable[T] = ()):
        self.key = key
        self._entries: dict[str, T] = {}
        pairs = entries.items() if isinstance(entries, Mapping) else ((e.name, e) for e in entries)
        for name, entry in pairs:
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ConfigError(f"{self.key}: {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"{self.key}: {name!r} is not one of {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, name: str) -> Any:
        """The implementation of a lazily registered entry (`Lazy`), imported now."""
        return self[name].load()


@dataclass(frozen=True)
class Lazy:
    """An entry whose code lives elsewhere: `impl` is "module:attr", imported by `load()`."""

    name: str
    impl: str

    def load(self) -> Any:
        module, attr = self.impl.split(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class LossKind(Lazy):
    """A contrastive term: impl(rows, tau) -> scalar (medflip.losses.contrastive)."""

    # targets come from label vectors, not from which image a text came with: such a kind
    # also learns from unpaired rows and text-only reports (MedCLIP's decoupling)
    label_matched: bool = False


@dataclass(frozen=True)
class DataSource(Lazy):
    """A dataset layout: impl is its `medflip.data.layouts.Layout` (readers, corpus)."""

    root: str = ""  # what data.root holds, for messages
    embedded: bool = False  # builds its own corpus; no data.root
    root_may_be_file: bool = False  # a manifest table itself may be data.root

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


def _layout(name: str) -> str:
    return f"medflip.data.layouts.{name}:LAYOUT"


DATA_SOURCES: Registry[DataSource] = Registry(
    "data.source",
    (
        DataSource("synthetic", _layout("synthetic"), embedded=True),
        DataSource(
            "mimic-cxr",
            _layout("mimic"),
            "files/pXX/pNNNNNNNN/sNNNNNNNN/*.jpg, mimic-cxr-2.*-metadata.csv(.gz) and the reports",
        ),
        DataSource("chexpert", _layout("chexpert"), "train.csv and valid.csv"),
        DataSource("openi", _layout("openi"), "ecgen-radiology/*.xml and NLMCXR_png/ (or images/)"),
        DataSource(
            "manifest",
            _layout("manifest"),
            "a manifest.csv or manifest.parquet",
            root_may_be_file=True,
        ),
    ),
)

LOSS_KINDS: Registry[LossKind] = Registry(
    "loss.kind",
    (
        LossKind("clip", "medflip.losses.contrastive:clip_term"),
        LossKind("medclip", "medflip.losses.contrastive:medclip_term", label_matched=True),
        LossKind("medflip", "medflip.losses.contrastive:medflip_term"),
    ),
)
