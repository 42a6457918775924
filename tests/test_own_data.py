"""Own data without surprises (README "Your own data"): a manifest row whose label cells are
all blank takes its report's labels (per row, not per table); a bad label value stops the
read naming the row, column, value and what is allowed; the probe's evaluation sets are
required only when the probe runs (eval.probe)."""

from __future__ import annotations

import numpy as np
import pytest

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import checks, eval_sets, sources
from medflip.data.labels import OBSERVATIONS
from medflip.data.layouts.manifest import read_manifest
from tests.fixtures_data import make_class_manifest, write_csv, write_image

CARDIO = OBSERVATIONS.index("Cardiomegaly")
EFFUSION = OBSERVATIONS.index("Pleural Effusion")


def manifest(tmp_path, rows) -> str:
    for rel, *_ in rows:
        write_image(str(tmp_path / rel), size=(16, 16))
    path = str(tmp_path / "manifest.csv")
    write_csv(path, ["image_path", "report", "Cardiomegaly", "Pleural Effusion"], rows)
    return path


def test_rows_with_blank_label_cells_take_their_reports_labels(tmp_path):
    path = manifest(
        tmp_path,
        [
            ["a.png", "IMPRESSION: Moderate cardiomegaly.", "0", "1"],  # the table wins
            ["b.png", "IMPRESSION: Moderate cardiomegaly.", "", ""],  # blank: the report
        ],
    )
    a, b = read_manifest(path, sources.SkipCounts(), "findings_impression")
    assert a.labels[CARDIO] == 0 and a.labels[EFFUSION] == 1
    assert b.labels[CARDIO] == 1  # from the report, although the table has label columns
    assert np.isnan(b.labels[EFFUSION])  # not mentioned in the report


def test_a_bad_label_value_names_the_cell_and_what_is_allowed(tmp_path):
    path = manifest(tmp_path, [["a.png", "IMPRESSION: Normal.", "yes", ""]])
    with pytest.raises(sources.SourceError) as err:
        read_manifest(path, sources.SkipCounts(), "findings_impression")
    assert str(err.value) == (
        f"{path} row 2: Cardiomegaly='yes' is not a label value; allowed: 1 (positive), "
        "0 (negative), -1 (uncertain) or blank (not mentioned)"
    )
    path = manifest(tmp_path, [["a.png", "IMPRESSION: Normal.", "2", ""]])
    with pytest.raises(sources.SourceError, match=r"row 2: Cardiomegaly='2' is not a label"):
        read_manifest(path, sources.SkipCounts(), "findings_impression")


def test_probe_sets_are_required_only_when_the_probe_runs(tmp_path):
    """10 test studies per class fill the 5-class set (data.eval_per_class=10) and leave
    nothing for the probe's two sets of 5 per class from other patients."""
    path = make_class_manifest(str(tmp_path / "m"), train_per_class=40, test_per_class=10)
    base = {"data.source": "manifest", "data.root": path, "data.eval_per_class": 10}
    probe_on = apply_overrides(variants.get("tiny"), {**base, "eval.probe": True})
    with pytest.raises(checks.DataError, match="evaluation set probe_train needs 5 images"):
        checks.check(probe_on, "cpu")
    probe_off = apply_overrides(variants.get("tiny"), {**base, "eval.probe": False})
    checks.check(probe_off, "cpu")  # the 5-class and binary sets are all it needs
    sets = eval_sets._real_sets("manifest", path, 0, 16, 10)  # and the run builds them
    assert len(sets["fiveclass"][1]) == 50 and len(sets["probe_train"][1]) < 5 * 5  # short
