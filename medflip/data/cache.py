"""The on-disk cache for derived data (tokenizers, pre-rendered corpora).

Several Ray workers may build the same entry at once: the first takes a file lock and
builds, the others wait and then read what it wrote; writes go to a temporary name in the
same directory and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import multiprocessing
import os
import shutil
from collections.abc import Iterable

from medflip import files


def cache_dir() -> str:
    """`$MEDFLIP_CACHE`, else `~/.cache/medflip` (created)."""
    path = os.environ.get("MEDFLIP_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "medflip"
    )
    os.makedirs(path, exist_ok=True)
    return path


def digest(parts: Iterable[str]) -> str:
    """sha1 of the parts (each followed by a separator), 16 hex digits."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]


@contextlib.contextmanager
def locked(path: str):
    """Hold an exclusive lock on `path + '.lock'` (blocks while another process builds)."""
    with open(path + ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse_spawn_reimport(path)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _refuse_spawn_reimport(path: str) -> None:
    """A spawned child (the corpus renderer's worker pool) that re-runs a caller's script
    top level would wait for ever on the lock its parent holds while waiting for it: say so.
    `_inheriting` is the flag Python's own spawn check reads (multiprocessing/spawn.py)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            f"{path}: a spawned worker process re-ran the calling script's top level, which "
            "waits on a cache its parent is building; put the script's code under "
            "`if __name__ == '__main__':`"
        )


@contextlib.contextmanager
def atomic_dir(path: str):
    """Yield a temporary directory that becomes `path` when the block succeeds."""
    tmp = files.temp_dir(os.path.dirname(path))  # readable under the umask, unlike mkdtemp
    try:
        yield tmp
        os.replace(tmp, path) if not os.path.exists(path) else shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str):
    """Yield a temporary file name that is renamed to `path` when the block succeeds."""
    fd, tmp = files.temp_file(os.path.dirname(path))  # readable under the umask: shared caches
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def code_version(*names: str) -> str:
    """A digest of source files of medflip/data (glob patterns, e.g. "synthetic/*.py"):
    cached corpora and evaluation sets die with the code that made them."""
    here = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for name in names:
        for path in sorted(glob.glob(os.path.join(here, name))):
            with open(path, "rb") as fh:
                parts += [os.path.relpath(path, here), fh.read().decode("utf-8", "replace")]
    return digest(parts)
