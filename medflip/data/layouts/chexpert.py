"""Layout `chexpert`: CheXpert (train/valid/test CSVs; no reports).

Named in `medflip.registry.DATA_SOURCES`.
"""

from __future__ import annotations

import os
import re

from medflip.data.layouts import Layout
from medflip.data.records import (
    Record,
    SkipCounts,
    SourceError,
    parse_labels,
    read_csv,
    require_dir,
)

_CHEXPERT_PREFIX = re.compile(r"^CheXpert-v1\.0(-small)?/")
# (candidate tables, split): the first existing table of each entry is read.
_CHEXPERT_TABLES = (
    (("train.csv",), "train"),
    (("valid.csv",), "validate"),
    (("test_labels.csv", "test.csv"), "test"),
)


def _chexpert_table(base: str, table: str, split: str, skipped: SkipCounts) -> list[Record]:
    records = []
    for row in read_csv(table, ("Path",)):
        rel = _CHEXPERT_PREFIX.sub("", row["Path"].strip())
        path = os.path.join(base, rel)
        if not os.path.isfile(path):
            skipped.add("missing image", path)
            continue
        try:
            labels = parse_labels(row, table)
        except ValueError:
            skipped.add("bad label value", f"{table}: {rel}")
            continue
        parts = rel.split("/")  # train/patient00001/study1/view1_frontal.jpg
        patient = parts[1] if len(parts) > 3 else rel
        study = "/".join(parts[1:3]) if len(parts) > 3 else rel
        frontal = row.get("Frontal/Lateral", "Frontal") != "Lateral"
        view = (row.get("AP/PA") or "").strip() if frontal else "LATERAL"
        records.append(Record(path, None, labels, patient, study, view, split))
    return records


def read_chexpert(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """CheXpert train/valid(/test) CSVs; images without reports (report None), so the
    label policy does not apply: soft targets use the table."""
    root = require_dir(root, "CheXpert: train.csv and valid.csv")
    base = next(
        (
            d
            for d in (
                root,
                os.path.join(root, "CheXpert-v1.0-small"),
                os.path.join(root, "CheXpert-v1.0"),
            )
            if os.path.isfile(os.path.join(d, "train.csv"))
        ),
        None,
    )
    if base is None:
        raise SourceError(
            f"{root}: no CheXpert train.csv (expected it in the root or in "
            "CheXpert-v1.0-small/ or CheXpert-v1.0/)"
        )
    records = []
    for names, split in _CHEXPERT_TABLES:
        tables = [os.path.join(base, n) for n in names if os.path.isfile(os.path.join(base, n))]
        if tables:
            records += _chexpert_table(base, tables[0], split, skipped)
    return records


LAYOUT = Layout(read=read_chexpert)
