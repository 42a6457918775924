"""Search files for report text: the privacy check behind "reports never reach outputs".

Looks inside what plain byte search would miss: Parquet (compressed pages: read through
pyarrow, every string cell and the file metadata), zip archives (torch checkpoints, each
member decompressed) and gzip. Everything else is searched as raw bytes.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def report_needles(
    texts: Iterable[str], exclude: Iterable[str] = (), min_words: int = 3
) -> list[str]:
    """Every distinct sentence of `texts` with at least `min_words` words, and each whole
    text; minus `exclude` (e.g. class prompts, which are not report text)."""
    skip = {e.strip().lower() for e in exclude}
    out = set()
    for text in texts:
        out.add(text.strip())
        for sentence in SENTENCE_END.split(text):
            s = sentence.strip()
            if len(s.split()) >= min_words and s.lower() not in skip:
                out.add(s)
    return sorted(out)


def _blobs(path: Path) -> Iterable[tuple[str, bytes]]:
    """(where, bytes) pieces of one file, decoded where a container would hide text."""
    data = path.read_bytes()
    yield str(path), data
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        yield f"{path} (metadata)", b"\n".join(k + b"=" + v for k, v in meta.items())
        for name in table.column_names:
            column = table.column(name)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                cells = [c for c in column.to_pylist() if c]
                yield f"{path}:{name}", "\n".join(cells).encode()
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                yield f"{path}!{member}", z.read(member)
    elif data[:2] == b"\x1f\x8b":
        yield f"{path} (gunzip)", gzip.decompress(data)


def scan(roots: Iterable[Path], needles: list[str]) -> tuple[list[tuple[str, str]], int, list[str]]:
    """Search every regular file under `roots`: ([(where, needle)], files read, unreadable).

    A file that vanished meanwhile (log rotation, temp files) is not counted."""
    pattern = re.compile(
        b"|".join(re.escape(n.encode()) for n in sorted(needles, key=len, reverse=True))
    )
    hits, files, unreadable = [], 0, []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
        for path in paths:
            if not path.is_file() or path.is_symlink() or path.is_socket():
                continue
            try:
                for where, blob in _blobs(path):
                    hits += [(where, m.group().decode()) for m in pattern.finditer(blob)]
                files += 1
            except FileNotFoundError:
                continue
            except (OSError, zipfile.BadZipFile, EOFError, pa.ArrowException) as e:
                unreadable.append(f"{path}: {e}")
    return hits, files, unreadable
