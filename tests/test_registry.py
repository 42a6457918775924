"""The registry of names: one error type, duplicates refused, code imported on first use,
and every registered "module:attr" resolving to what its kind promises."""

from __future__ import annotations

import sys

import pytest

from medflip.data.layouts import Layout
from medflip.registry import DATA_SOURCES, LOSS_KINDS, ConfigError, Lazy, Registry


def test_a_name_given_twice_is_refused_and_an_unknown_one_lists_the_names():
    reg = Registry("thing", {"a": 1, "b": 2})
    with pytest.raises(ConfigError, match="thing: 'a' is registered twice"):
        reg.add("a", 3)
    with pytest.raises(ConfigError, match="thing: 'c' is not one of a, b"):
        reg["c"]
    assert list(reg) == ["a", "b"] and "a" in reg and "c" not in reg and len(reg) == 2
    with pytest.raises(ConfigError, match="registered twice"):
        Registry("thing", [Lazy("x", "m:a"), Lazy("x", "m:b")])


def test_a_lazy_entry_imports_its_module_only_when_loaded(tmp_path, monkeypatch):
    (tmp_path / "medflip_lazy_probe.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing", [Lazy("x", "medflip_lazy_probe:VALUE")])
    assert "medflip_lazy_probe" not in sys.modules
    assert reg.load("x") == 42 and "medflip_lazy_probe" in sys.modules
    monkeypatch.delitem(sys.modules, "medflip_lazy_probe")


@pytest.mark.parametrize("name", sorted(DATA_SOURCES))
def test_every_data_source_resolves_to_its_layout(name):
    layout, entry = DATA_SOURCES.load(name), DATA_SOURCES[name]
    assert isinstance(layout, Layout)
    # embedded <=> builds its own corpus and reads no root
    assert entry.embedded == (layout.read is None) == (layout.train_corpus is not None)
    assert entry.embedded == (entry.root == "")


@pytest.mark.parametrize("name", sorted(LOSS_KINDS))
def test_every_loss_kind_resolves_to_a_contrastive_term(name):
    assert callable(LOSS_KINDS.load(name))


def test_the_label_matched_kinds_are_the_label_target_ones():
    assert [k for k in LOSS_KINDS if LOSS_KINDS[k].label_matched] == ["medclip"]
