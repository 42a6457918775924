"""The append-only results layout: parts, LSM merges, compaction, crashes in between.

The reference is a plain dict {(trial_id, step): value}, updated report by report: what
the table must hold whatever files it is spread over.
"""

import os
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tables

from medflip.results import parts
from medflip.results import table as results


def _rows(trial_id, steps, acc):
    return [
        results.row(
            tables.DEMO,
            {"step": s, "zeroshot_acc": acc, "status": "running"},
            tables.MANIFEST,
            "exp",
            "mask_ratio",
            trial_id,
        )
        for s in steps
    ]


def _as_dict(df):
    return {(t, int(s)): a for t, s, a in zip(df.trial_id, df.step, df.zeroshot_acc, strict=True)}


def _random_appends(path, n, rng, expected):
    """n appends of a few reports each, some re-reporting steps already written."""
    for i in range(n):
        trial = f"t{rng.randrange(4)}"
        steps = sorted(rng.sample(range(0, 60, 10), rng.randrange(1, 4)))
        acc = float(i)  # each append's value is unique: the latest must win
        results.append(path, _rows(trial, steps, acc))
        expected.update({(trial, s): acc for s in steps})


def test_appends_read_back_as_the_latest_row_per_trial_step_with_bounded_files(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(parts, "FANOUT", 3)
    rng, expected = random.Random(0), {}
    for n in (1, 5, 20, 40):
        _random_appends(tmp_path, n, rng, expected)
        df = results.load(tmp_path)
        assert _as_dict(df) == expected
        assert not df.duplicated(["trial_id", "step"]).any()
        levels = [lv for _, lv, _ in parts.list_parts(tmp_path / results.FILENAME)]
        for lv in set(levels):  # merged as soon as a level fills
            assert levels.count(lv) < parts.FANOUT
    assert max(levels) >= 2  # 66 appends at fan-out 3: merges reached a third level
    assert (tmp_path / "results.parts").is_dir()


def test_an_append_writes_only_the_new_rows(tmp_path):
    results.write(_rows("t1", range(0, 20_000, 10), 0.1), tmp_path)  # a 2,000-row table
    before = (tmp_path / results.FILENAME).read_bytes()
    results.append(tmp_path, _rows("t2", range(0, 200, 10), 0.2))
    (seq, level, part), *rest = parts.list_parts(tmp_path / results.FILENAME)
    assert not rest and level == 0 and pq.read_metadata(part).num_rows == 20
    assert (tmp_path / results.FILENAME).read_bytes() == before  # the base is not rewritten
    assert len(results.load(tmp_path)) == 2020


def test_compaction_folds_parts_and_later_appends_still_win(tmp_path):
    rng, expected = random.Random(1), {}
    _random_appends(tmp_path, 12, rng, expected)
    results.compact(tmp_path)
    assert os.listdir(tmp_path) == [results.FILENAME]  # one file, no parts folder
    assert pq.read_metadata(tmp_path / results.FILENAME).num_rows == len(expected)
    assert _as_dict(results.load(tmp_path)) == expected
    results.append(tmp_path, _rows("t0", [0], 99.0))  # numbered after what the base holds
    expected[("t0", 0)] = 99.0
    assert _as_dict(results.load(tmp_path)) == expected


def test_a_crash_between_new_base_and_part_deletion_counts_nothing_twice(tmp_path, monkeypatch):
    rng, expected = random.Random(2), {}
    _random_appends(tmp_path, 8, rng, expected)
    with monkeypatch.context() as m:
        m.setattr(parts, "drop_parts", lambda base, upto: None)  # killed right after the base
        results.compact(tmp_path)
    assert parts.list_parts(tmp_path / results.FILENAME)  # the absorbed parts are still there
    assert _as_dict(results.load(tmp_path)) == expected  # and are skipped
    # write() replaces the table: parts left over from before must not come back
    with monkeypatch.context() as m:
        m.setattr(parts, "drop_parts", lambda base, upto: None)
        results.write(_rows("new", [10], 0.5), tmp_path)
    assert _as_dict(results.load(tmp_path)) == {("new", 10): 0.5}


def test_a_crash_inside_a_merge_leaves_the_same_table(tmp_path, monkeypatch):
    monkeypatch.setattr(parts, "FANOUT", 3)
    rng, expected = random.Random(3), {}
    _random_appends(tmp_path, 3, rng, expected)  # the base, then parts 1 and 2
    with monkeypatch.context() as m:  # the merge's inputs survive it (killed before deletion)
        m.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        _random_appends(tmp_path, 1, rng, expected)
    names = sorted(p.name for _, _, p in parts.list_parts(tmp_path / results.FILENAME))
    assert names == [
        "000000000001-L0.parquet",
        "000000000002-L0.parquet",
        "000000000003-L0.parquet",
        "000000000003-L1.parquet",
    ]
    assert _as_dict(results.load(tmp_path)) == expected
    _random_appends(tmp_path, 10, rng, expected)  # the next merges absorb the copies
    assert _as_dict(results.load(tmp_path)) == expected


def test_a_corrupt_part_is_named(tmp_path):
    results.append(tmp_path, _rows("t1", [10], 0.1))
    results.append(tmp_path, _rows("t1", [20], 0.1))
    (_, _, part), *_ = parts.list_parts(tmp_path / results.FILENAME)
    part.write_bytes(b"PAR1 torn")
    with pytest.raises(results.ResultsError, match=str(part)):
        results.load(tmp_path)
