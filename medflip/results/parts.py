"""The append-only layout of a results table: a base file plus small part files.

`<dir>/results.parquet` is the base; `<dir>/results.parts/<seq>-L<level>.parquet` hold rows
appended since. Each part is written atomically (temp file + `os.replace`) and numbered
after every part and base before it, so reading the base, then the parts in `seq` order,
and keeping the last row per (trial_id, step) gives exactly the table that rewriting it on
every append used to give (medflip/results/table.py does the dedup; this module is Parquet only).

Why: rewriting the table on every append costs time proportional to the table (1.2 s per
20 rows at 100k rows): the bookkeeping of an N-trial sweep grows as N². A part costs the
new rows only. To keep the number of files bounded, parts are merged LSM-style: FANOUT parts
of one level become one part of the next (a plain concatenation; dedup happens on read), so
a row is rewritten about log_FANOUT(rows) times in all and a table holds at most
(FANOUT - 1) parts per level. `compact` (results.py) folds everything into the base.

The base's Parquet metadata records the highest part `seq` it already contains (`SEQ_KEY`):
a crash between writing a new base and deleting the parts it absorbed leaves parts that
readers skip, so nothing is ever counted twice and nothing is lost. One writer per table
(the sweep driver); readers may run concurrently (a part deleted under a reader is retried).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medflip import files

FANOUT = 16
SEQ_KEY = b"medflip.parts_seq"
_PART = re.compile(r"^(\d{12})-L(\d+)\.parquet$")
_RETRIES = 5


def parts_dir(base: Path) -> Path:
    """`results.parquet` -> `results.parts` (any `<name>.parquet` -> `<name>.parts`)."""
    return base.with_suffix(".parts")


def list_parts(base: Path) -> list[tuple[int, int, Path]]:
    """(seq, level, path) of every complete part, oldest first (temp files are skipped)."""
    folder = parts_dir(base)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [(m, n) for n in names if (m := _PART.match(n))]
    return sorted((int(m[1]), int(m[2]), folder / n) for m, n in found)


def covered_seq(base: Path) -> int:
    """The highest part seq already inside the base (0: none, or no base)."""
    try:
        meta = pq.read_schema(base).metadata or {}
    except (pa.ArrowException, OSError):  # none yet, or a corrupt one being replaced
        return 0
    return int(meta.get(SEQ_KEY, b"0"))


def write_atomic(table: pa.Table, target: Path, seq: int | None = None) -> None:
    """Write `table` to `target` via a temp file in the same directory and `os.replace`."""
    if seq is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), SEQ_KEY: b"%d" % seq}
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # group/other-readable under the umask (mkstemp's 0600 would hide it on shared storage)
    fd, tmp = files.temp_file(target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_base(table: pa.Table, base: Path, covered: int | None = None) -> None:
    """Make `table` the whole table: a new base covering parts up to `covered` (default:
    every part there now), then delete those parts."""
    if covered is None:
        covered = max([covered_seq(base), *(s for s, _, _ in list_parts(base))])
    write_atomic(table, base, seq=covered)
    drop_parts(base, covered)


def drop_parts(base: Path, upto: int) -> None:
    for seq, _, path in list_parts(base):
        if seq <= upto:
            path.unlink(missing_ok=True)
    try:
        parts_dir(base).rmdir()  # only when empty: no folder left behind after compaction
    except OSError:
        pass


def add_part(table: pa.Table, base: Path) -> Path:
    """Append `table` as the newest part (level 0), then merge full levels."""
    parts = list_parts(base)
    seq = max([covered_seq(base), *(s for s, _, _ in parts)]) + 1
    path = parts_dir(base) / f"{seq:012d}-L0.parquet"
    write_atomic(table, path)
    if base.exists():
        os.utime(base)  # the run's results changed: "newest run" lookups go by the base's mtime
    merge_levels(base)
    return path


def merge_levels(base: Path) -> None:
    """While some level holds FANOUT parts, concatenate them (in seq order) into one part of
    the next level named by their highest seq. The higher a level, the older its parts, so
    the merged rows stay in order; a crash before the inputs are deleted leaves copies of
    the same rows in the same order, which reading deduplicates to the same table."""
    level = 0
    while True:
        group = [(s, p) for s, lv, p in list_parts(base) if lv == level]
        if not group:
            return
        if len(group) >= FANOUT:
            tables = [pq.read_table(p) for _, p in group]
            merged = pa.concat_tables(tables, promote_options="default")
            write_atomic(merged, parts_dir(base) / f"{group[-1][0]:012d}-L{level + 1}.parquet")
            for _, p in group:
                p.unlink(missing_ok=True)
        level += 1


def read(base: Path) -> tuple[list[pa.Table], int]:
    """The base's table (if any) and every part newer than it, oldest first, and the
    highest seq read. Parts are listed before the base is read: a compaction in between
    only makes the base newer, and the parts it absorbed are then skipped by their seq.
    Raises FileNotFoundError when there is neither a base nor a part."""
    for attempt in range(_RETRIES):
        parts = list_parts(base)
        try:
            tables = [(s, _read_one(p)) for s, _, p in parts]
            head = [_read_one(base)] if base.is_file() else []
        except FileNotFoundError:
            if attempt == _RETRIES - 1:
                raise
            continue  # a concurrent merge or compaction removed a part: list again
        if not head and not tables:
            raise FileNotFoundError(str(base))
        # The seq from the very table read (the base may have been replaced since).
        covered = int((head[0].schema.metadata or {}).get(SEQ_KEY, b"0")) if head else 0
        newer = [t for s, t in tables if s > covered]
        return head + newer, max([covered, *(s for s, _ in tables)])
    raise AssertionError("unreachable")


class PartError(ValueError):
    """A base or part file that is not readable Parquet (the message names it)."""


def _read_one(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise PartError(f"{path}: not a readable Parquet results file ({exc})") from None
