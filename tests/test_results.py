"""medflip.results.table: the schema, atomic writes, dedup by (trial_id, step), loading."""

import os
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tables

from medflip import config, variants
from medflip.results import table as results


def _rows(trial_id="t1", steps=(10, 20), acc=0.5, experiment="exp"):
    return [
        results.row(
            tables.DEMO,
            {"step": s, "zeroshot_acc": acc + s / 1000, "status": "running", "device_type": "cpu"},
            tables.MANIFEST,
            experiment,
            "mask_ratio",
            trial_id,
        )
        for s in steps
    ]


def test_schema_has_ids_every_config_key_metrics_and_manifest_once():
    cols = list(results.COLUMNS)
    assert cols[:4] == ["experiment", "sweep", "trial_id", "seed"]
    assert cols.count("seed") == 1
    assert set(config.KEYS) <= set(cols)
    assert set(results.METRICS) <= set(cols) and set(results.MANIFEST) <= set(cols)
    assert results.SCHEMA.names == cols


def test_row_write_load_round_trip(tmp_path):
    cfg = variants.get("demo")
    m = {
        "step": 100,
        "samples_seen": 12800,
        "train_time_s": 12.5,
        "zeroshot_acc": 0.61,
        "status": "completed",
        "device_type": "cpu",
    }
    r = results.row(config.flatten(cfg), m, results.manifest(2), "exp", "sw", "t1")
    assert r["config_hash"] == config.config_hash(cfg)
    path = results.write([r], tmp_path / "exp")
    assert path == tmp_path / "exp" / "results.parquet"
    df = results.load(tmp_path / "exp")
    assert len(df) == 1 and list(df.columns) == list(results.COLUMNS)
    got = df.iloc[0]
    assert got["step"] == 100 and got["zeroshot_acc"] == 0.61 and got["num_workers"] == 2
    assert got["mask.image_ratio"] == cfg.mask.image_ratio and got["seed"] == cfg.seed
    assert bool(got["loss.learn_temperature"]) is cfg.loss.learn_temperature
    assert pd.isna(got["probe_acc"])  # missing metrics are filled, not invented
    assert str(df["step"].dtype) == "Int64" and df["zeroshot_acc"].dtype == np.float64
    # The file itself carries the declared Arrow schema.
    assert pq.read_schema(path).remove_metadata().equals(results.SCHEMA)


def test_unknown_metric_is_rejected_naming_it():
    with pytest.raises(results.ResultsError, match=r"'zeroshot_accuracy'.*zeroshot_acc"):
        results.row(tables.DEMO, {"step": 1, "zeroshot_accuracy": 0.5}, {}, "e", "s", "t")
    bad = pd.DataFrame(_rows()).assign(report_text="x")
    with pytest.raises(results.ResultsError, match="report_text"):
        results.frame(bad)


@pytest.mark.parametrize(
    "column, value, pattern",
    [
        ("zeroshot_acc", "no acute findings", "expected numbers"),
        ("device_type", "FINDINGS: clear lungs.\nIMPRESSION: normal", "free text"),
        ("status", "exploded", "not one of"),
        ("step", 1.5, "expected integers"),
    ],
)
def test_bad_cells_are_rejected(column, value, pattern):
    rows = _rows()
    rows[0][column] = value
    with pytest.raises(results.ResultsError, match=rf"{column}.*{pattern}|{pattern}"):
        results.frame(rows)


def test_write_is_atomic_and_a_bad_frame_leaves_the_old_file(tmp_path):
    path = results.write(_rows(), tmp_path)
    before = path.read_bytes()
    bad = _rows(steps=(30,))
    bad[0]["zeroshot_acc"] = "free text"
    with pytest.raises(results.ResultsError):
        results.write(bad, tmp_path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["results.parquet"]  # no temp file left behind


def test_a_failure_while_writing_removes_the_temp_file(tmp_path, monkeypatch):
    path = results.write(_rows(), tmp_path)
    before = path.read_bytes()

    def crash(table, where):  # fault injection: the disk write dies half-way
        where.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(results.parts.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        results.write(_rows(steps=(10, 20, 30)), tmp_path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["results.parquet"]


def test_merge_and_append_keep_one_row_per_trial_step_latest_wins(tmp_path):
    old = _rows("t1", (10, 20), acc=0.1) + _rows("t2", (10,), acc=0.1)
    new = _rows("t1", (20, 30), acc=0.5)  # a restarted trial re-reports step 20
    merged = results.merge(results.frame(old), new)
    assert sorted(zip(merged["trial_id"], merged["step"], strict=True)) == [
        ("t1", 10),
        ("t1", 20),
        ("t1", 30),
        ("t2", 10),
    ]
    got = merged.set_index(["trial_id", "step"])["zeroshot_acc"]
    assert got[("t1", 20)] == pytest.approx(0.52) and got[("t1", 10)] == pytest.approx(0.11)
    results.append(tmp_path, old)
    results.append(tmp_path, new)
    results.append(tmp_path, new)  # a resumed sweep reporting the same rows again
    again = results.load(tmp_path)
    assert len(again) == 4 and not again.duplicated(["trial_id", "step"]).any()


def test_load_dir_file_and_lists_without_double_counting(tmp_path):
    a = results.write(_rows("t1", (10, 20)), tmp_path / "a")
    results.write(_rows("t1", (10, 20, 30), experiment="b"), tmp_path / "b")
    by_dir, by_file = results.load(tmp_path / "a"), results.load(a)
    pd.testing.assert_frame_equal(by_dir, by_file)
    assert len(results.load([tmp_path / "a", a])) == 2  # the same run twice counts once
    both = results.load([tmp_path / "a", tmp_path / "b"])  # two experiments, same trial id
    assert len(both) == 5 and set(both["experiment"]) == {"exp", "b"}


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        results.load(tmp_path / "nope")
    bad = tmp_path / "bad" / "results.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(results.ResultsError, match=re.escape(str(bad))):
        results.load(tmp_path / "bad")


def test_final_rows_last_report_last_values_and_status():
    rows = _rows("t1", (10, 20, 30)) + _rows("t2", (10,))
    rows[2]["zeroshot_acc"] = float("nan")  # the final report carried no evaluation
    rows[2]["status"] = "completed"
    del rows[3]["status"]
    final = results.final_rows(results.frame(rows)).set_index("trial_id")
    assert final.loc["t1", "step"] == 30 and final.loc["t1", "status"] == "completed"
    assert final.loc["t1", "zeroshot_acc"] == pytest.approx(0.52)  # the last evaluation
    assert final.loc["t2", "status"] == "running"


def test_manifest_and_records_from_ray():
    m = results.manifest(4, "NVIDIA H100")
    assert m["num_workers"] == 4 and m["device_type"] == "NVIDIA H100"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", m["git_sha"])
    assert m["ray_version"].startswith("2.60") and m["torch_version"] != ""
    rec = {
        "experiment": "e",
        "sweep": "s",
        "trial_id": "abc",
        "config": tables.DEMO,
        "manifest": m,
        "metrics": {
            "step": 5,
            "zeroshot_acc": 0.3,
            "training_iteration": 1,
            "timestamp": 123,
            "status": "running",
        },
    }
    rows = results.rows_from_records([rec])
    assert rows[0]["step"] == 5 and "training_iteration" not in rows[0]
    assert results.frame(rows)["device_type"][0] == "NVIDIA H100"
