"""Readers of the published layouts, on tiny real fixture trees."""

import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_data import (
    MIMIC_REPORT,
    label_cells,
    make_chexpert,
    make_mimic,
    make_openi,
    write_corrupt,
    write_csv,
    write_image,
)
from PIL import Image

from medflip.data.labels import OBSERVATIONS
from medflip.data.sources import (
    ImageError,
    Record,
    SourceError,
    fill_splits,
    load_records,
    read_image,
    soft_target_labels,
    training_text,
)

IDX = {name: k for k, name in enumerate(OBSERVATIONS)}


def by_study(loaded):
    out = {}
    for r in loaded.records:
        out.setdefault(r.study_id, []).append(r)
    return out


# ---------------------------------------------------------------- images and text


def test_read_image_center_crops_the_square_middle(tmp_path):
    # 40 wide x 20 high: black 10-px bands left and right, white middle 20 px (the square crop).
    pixels = np.zeros((20, 40), np.uint8)
    pixels[:, 10:30] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = read_image(str(tmp_path / "wide.png"), 10)
    assert out.shape == (10, 10) and out.dtype == np.float32
    assert out[:, 1:-1].min() > 0.99  # square-padding would have kept black bands
    # a portrait image: the crop is vertical, and the result matches crop-then-resize
    rng = np.random.default_rng(0)
    tall = rng.integers(0, 256, (64, 32), dtype=np.uint8)
    Image.fromarray(tall).save(tmp_path / "tall.png")
    ref = (
        np.asarray(
            Image.fromarray(tall[16:48]).resize(
                (16, 16), Image.Resampling.BILINEAR, reducing_gap=3.0
            )
        )
        / 255.0
    )
    got = read_image(str(tmp_path / "tall.png"), 16)
    assert np.abs(got[2:-2] - ref[2:-2]).mean() < 0.02


def test_read_image_16bit_png_scaled_to_unit_range(tmp_path):
    arr = (np.arange(16 * 16).reshape(16, 16) * 10).astype(np.uint16)  # max 2550
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = read_image(str(tmp_path / "deep.png"), 16)
    assert 0.0 <= out.min() < 0.01 and out.max() == pytest.approx(1.0, abs=0.01)


def test_read_image_corrupt_raises_naming_the_file(tmp_path):
    bad = tmp_path / "x" / "bad.jpg"
    write_corrupt(str(bad))
    with pytest.raises(ImageError, match="bad.jpg"):
        read_image(str(bad), 16)


def test_training_text_keeps_impression_then_findings_only():
    text = training_text(MIMIC_REPORT)
    assert text == (
        "Large right pleural effusion. The heart size is normal.  There is a large "
        "right pleural effusion.".replace("  ", " ")
    )
    assert "INDICATION" not in text and "cough" not in text
    assert training_text("  no   headers\nat all ") == "no headers at all"
    only_other = "EXAMINATION: chest\n\nIndication text.\n\nThe lungs are clear."
    assert training_text(only_other) == "The lungs are clear."  # MIMIC's last-paragraph fallback


# ---------------------------------------------------------------- MIMIC-CXR-JPG


def test_mimic_layout(tmp_path):
    root = str(tmp_path / "mimic")
    info = make_mimic(root)
    loaded = load_records("mimic-cxr", root)
    assert len(loaded.records) == info["images"]  # corrupt files are found lazily, not here
    assert loaded.skipped.counts["missing image"] == info["missing"]
    studies = by_study(loaded)
    first = studies["50000001"]
    assert [r.view for r in first] == ["PA", "LATERAL"]
    assert first[0].report.startswith("Large right pleural effusion. The heart size")
    assert first[0].image_path.endswith("files/p10/p10000001/s50000001/d1.jpg")
    lab = first[0].labels
    assert lab.dtype == np.float32 and lab.shape == (14,)
    assert lab[IDX["Cardiomegaly"]] == 1 and lab[IDX["Edema"]] == -1
    assert np.isnan(lab[IDX["Pleural Effusion"]])  # the CSV row wins over the report
    # no CSV row for s50000002: labels extracted from its report (impression)
    assert studies["50000002"][0].labels[IDX["Pleural Effusion"]] == 1
    assert {r.split for r in loaded.records if r.patient_id == "12000003"} == {"test"}
    assert {r.split for r in loaded.records if r.patient_id != "12000003"} == {"train"}


def test_mimic_reports_beside_root_and_other_versions(tmp_path):
    root = str(tmp_path / "mimic-cxr-jpg")
    make_mimic(root, reports_beside=True, corrupt=False)
    os.rename(
        os.path.join(root, "mimic-cxr-2.0.0-chexpert.csv.gz"),
        os.path.join(root, "mimic-cxr-2.1.0-negbio.csv.gz"),
    )
    loaded = load_records("mimic-cxr", root)
    assert len(loaded.records) == 6 and "missing report" not in loaded.skipped.counts
    assert by_study(loaded)["50000001"][0].labels[IDX["Cardiomegaly"]] == 1  # negbio rows used


def test_mimic_missing_root_or_metadata_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="nowhere"):
        load_records("mimic-cxr", str(tmp_path / "nowhere"))
    root = str(tmp_path / "mimic")
    make_mimic(root)
    os.remove(os.path.join(root, "mimic-cxr-2.0.0-metadata.csv.gz"))
    with pytest.raises(SourceError, match="metadata"):
        load_records("mimic-cxr", root)


# ---------------------------------------------------------------- CheXpert


@pytest.mark.parametrize("prefix", ["CheXpert-v1.0-small", "CheXpert-v1.0"])
def test_chexpert_layout(tmp_path, prefix):
    make_chexpert(str(tmp_path), prefix)
    for root in (str(tmp_path), str(tmp_path / prefix)):  # the parent or the dataset dir
        loaded = load_records("chexpert", root)
        assert len(loaded.records) == 4 and loaded.skipped.counts["missing image"] == 1
        recs = {(r.patient_id, r.view): r for r in loaded.records}
        frontal = recs[("patient00001", "AP")]
        assert frontal.report is None and frontal.study_id == "patient00001/study1"
        assert os.path.isfile(frontal.image_path) and frontal.split == "train"
        assert recs[("patient00001", "LATERAL")].labels[IDX["Cardiomegaly"]] == 1
        assert recs[("patient00002", "PA")].labels[IDX["Edema"]] == -1
        assert recs[("patient64541", "PA")].split == "validate"


def test_chexpert_without_train_csv(tmp_path):
    make_chexpert(str(tmp_path))
    os.remove(tmp_path / "CheXpert-v1.0-small" / "train.csv")
    with pytest.raises(SourceError, match="train.csv"):
        load_records("chexpert", str(tmp_path))


# ---------------------------------------------------------------- OpenI


@pytest.mark.parametrize("image_dir", ["NLMCXR_png", "images"])
def test_openi_layout(tmp_path, image_dir):
    make_openi(str(tmp_path), image_dir)
    loaded = load_records("openi", str(tmp_path))
    studies = by_study(loaded)
    assert sorted(studies) == ["CXR1", "CXR2"] and len(studies["CXR1"]) == 2
    assert loaded.skipped.counts == {"missing image": 1, "empty report": 1, "corrupt report": 1}
    cxr1 = studies["CXR1"][0]
    assert cxr1.report == "Mild cardiomegaly. Heart is enlarged."
    assert cxr1.image_path.endswith(f"{image_dir}/CXR1_1_IM-0001-3001.png")
    assert cxr1.labels[IDX["Cardiomegaly"]] == 1
    assert studies["CXR2"][0].labels[IDX["Pleural Effusion"]] == 1
    shutil.rmtree(tmp_path / "ecgen-radiology")
    with pytest.raises(SourceError, match="ecgen-radiology"):
        load_records("openi", str(tmp_path))


# ---------------------------------------------------------------- manifest


def _manifest_rows(tmp_path):
    write_image(str(tmp_path / "img" / "a.png"))
    write_image(str(tmp_path / "img" / "b.png"))
    absolute = str(tmp_path / "elsewhere" / "c.jpg")
    write_image(absolute)
    header = ["image_path", "report", "patient_id", "split", *OBSERVATIONS]
    return header, [
        ["img/a.png", "IMPRESSION: Mild edema.", "p1", "train", *label_cells({"Edema": 1.0})],
        ["img/b.png", "", "p2", "val", *label_cells({"No Finding": 1.0})],
        [absolute, "clear lungs", "p3", "test", *label_cells({})],
        ["img/gone.png", "x", "p4", "train", *label_cells({})],
    ]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_manifest_csv_and_parquet(tmp_path, fmt):
    header, rows = _manifest_rows(tmp_path)
    if fmt == "csv":
        write_csv(str(tmp_path / "manifest.csv"), header, rows)
    else:
        cols = {h: [str(r[k]) for r in rows] for k, h in enumerate(header)}
        pq.write_table(pa.table(cols), tmp_path / "manifest.parquet")
    loaded = load_records("manifest", str(tmp_path))
    assert [r.patient_id for r in loaded.records] == ["p1", "p2", "p3"]
    assert [r.split for r in loaded.records] == ["train", "validate", "test"]
    a, b, c = loaded.records
    assert a.report == "Mild edema." and a.labels[IDX["Edema"]] == 1
    assert b.report is None and b.labels[IDX["No Finding"]] == 1  # kept: it has labels
    assert c.image_path == str(tmp_path / "elsewhere" / "c.jpg")
    # its label cells are all blank: its report's labels, per row (README "Your own data")
    from_report, _ = soft_target_labels(None, "clear lungs", "findings_impression")
    np.testing.assert_array_equal(c.labels, from_report)
    assert loaded.skipped.counts == {"missing image": 1, "empty report": 1}


def test_manifest_report_only_labels_and_bad_input(tmp_path):
    write_image(str(tmp_path / "a.png"))
    write_csv(
        str(tmp_path / "manifest.csv"),
        ["image_path", "report"],
        [["a.png", "Moderate cardiomegaly."]],
    )
    rec = load_records("manifest", str(tmp_path)).records[0]
    assert rec.labels[IDX["Cardiomegaly"]] == 1 and rec.split in ("train", "test")
    write_csv(str(tmp_path / "manifest.csv"), ["image_path", "split"], [["a.png", "holdout"]])
    with pytest.raises(SourceError, match="holdout"):
        load_records("manifest", str(tmp_path))
    write_csv(str(tmp_path / "manifest.csv"), ["path"], [["a.png"]])
    with pytest.raises(SourceError, match="image_path"):
        load_records("manifest", str(tmp_path))


def test_fill_splits_is_by_patient_and_deterministic():
    recs = [Record("x", "t", np.zeros(14, np.float32), f"p{k // 3}", f"s{k}") for k in range(600)]
    fill_splits(recs)
    splits = {}
    for r in recs:
        splits.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values())  # a patient never straddles splits
    share = sum(s == {"test"} for s in splits.values()) / len(splits)
    assert 0.1 < share < 0.3
    again = [Record("x", "t", np.zeros(14, np.float32), f"p{k // 3}", f"s{k}") for k in range(600)]
    fill_splits(again)
    assert [r.split for r in again] == [r.split for r in recs]
