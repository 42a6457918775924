"""Temporary files and directories for atomic writes, readable as any other file is.

`tempfile.mkstemp` / `mkdtemp` create mode 0600 / 0700 whatever the umask; renamed into
place, the results table, the tokenizer and the prepared cache then stay unreadable to
the rest of a group on shared storage. These create with 0666 / 0777 and let the umask
decide (0644 / 0755 under the usual 022), as `open()` and `mkdir` do.
"""

from __future__ import annotations

import os
import secrets

_TRIES = 100


def temp_file(
    directory: str | os.PathLike, prefix: str = ".tmp-", suffix: str = ""
) -> tuple[int, str]:
    """(fd, path) of a new empty file in `directory`, opened for writing, like mkstemp."""
    for _ in range(_TRIES):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free temporary name after {_TRIES} tries")


def temp_dir(directory: str | os.PathLike, prefix: str = ".tmp-") -> str:
    """The path of a new empty directory in `directory`, like mkdtemp."""
    for _ in range(_TRIES):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}")
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free temporary name after {_TRIES} tries")
