"""Shared test settings: two cores are shared by everything, so keep torch polite.

Fixtures every test file may use:
- `medflip_cache`: an empty MEDFLIP_CACHE of the test's own (function scope);
- `module_medflip_cache`: the same, shared by one test module (its costly builds once);
- `ray_cluster`, `system_tools` (tests/fixtures_ray.py): the session's one Ray head, and
  Chromium and Prometheus.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from fixtures_ray import ray_cluster, system_tools  # noqa: E402, F401  (registered here)


def pytest_collection_modifyitems(items):
    """The tests on the session's Ray head run last, in their order, so the head (started
    by the first of them) is up only while they run: idle, its GCS, raylet, dashboard and
    1 s metrics export still take ~14 % of a core (measured on the 2-core EPYC), which
    every other test would pay."""
    items.sort(key=lambda item: "ray_cluster" in getattr(item, "fixturenames", ()))


def _clear_memory_caches() -> None:
    """medflip's per-process caches of records, training corpora and evaluation sets are
    keyed by their arguments, not by the cache directory: a new MEDFLIP_CACHE starts them
    afresh too, so a test reads what it wrote, never another test's corpus."""
    from medflip.data import dataset, eval_sets, sources

    sources.cached_records.cache_clear()
    dataset._train_corpus.cache_clear()
    eval_sets._cached.cache_clear()


def _private_cache(monkeypatch: pytest.MonkeyPatch, path) -> str:
    monkeypatch.setenv("MEDFLIP_CACHE", str(path))
    _clear_memory_caches()
    return str(path)


@pytest.fixture
def medflip_cache(tmp_path, monkeypatch):
    """An empty MEDFLIP_CACHE for this test alone (path as str)."""
    yield _private_cache(monkeypatch, tmp_path / "cache")
    _clear_memory_caches()


@pytest.fixture(scope="module")
def module_medflip_cache(tmp_path_factory):
    """An empty MEDFLIP_CACHE shared by the tests of one module (path as str)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _private_cache(monkeypatch, tmp_path_factory.mktemp("cache"))
    _clear_memory_caches()
