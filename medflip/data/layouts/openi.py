"""Layout `openi`: OpenI / IU-Xray (one XML report per study, PNGs by parentImage id).

Named in `medflip.registry.DATA_SOURCES`.
"""

from __future__ import annotations

import glob
import os
import xml.etree.ElementTree as ET

from medflip.data.layouts import Layout
from medflip.data.records import (
    Record,
    SkipCounts,
    SourceError,
    require_dir,
    soft_target_labels,
    training_text,
)


def _openi_image_dirs(root: str) -> list[str]:
    cands = ("NLMCXR_png", "images", os.path.join("images", "images_normalized"), "")
    return [os.path.join(root, c) for c in cands if os.path.isdir(os.path.join(root, c))]


def _openi_report(tree: ET.ElementTree) -> str:
    """The FINDINGS and IMPRESSION AbstractTexts as a headed report ("" if both are empty)."""
    parts = {}
    for node in tree.iter("AbstractText"):
        label = (node.get("Label") or "").upper()
        if label in ("FINDINGS", "IMPRESSION"):
            parts[label] = " ".join("".join(node.itertext()).split())
    return "\n".join(f"{k}: {v}" for k, v in sorted(parts.items()) if v)


def read_openi(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """IU-Xray: one XML report per study, several PNGs (`parentImage` ids) per report; a
    report none of whose PNGs exists is one text-only record (image_path "")."""
    root = require_dir(root, "OpenI: ecgen-radiology/*.xml and NLMCXR_png/ (or images/)")
    xml_dir = os.path.join(root, "ecgen-radiology")
    if not os.path.isdir(xml_dir):
        raise SourceError(f"{root}: no ecgen-radiology/ directory (expected the OpenI XML reports)")
    image_dirs = _openi_image_dirs(root)
    records = []
    for xml_path in sorted(glob.glob(os.path.join(xml_dir, "*.xml"))):
        try:
            tree = ET.parse(xml_path)
        except (ET.ParseError, OSError):
            skipped.add("corrupt report", xml_path)
            continue
        raw = _openi_report(tree)
        if not raw:
            skipped.add("empty report", xml_path)
            continue
        report = training_text(raw)
        labels, text = soft_target_labels(None, raw, label_text)
        uid = tree.find("uId")
        study = uid.get("id") if uid is not None and uid.get("id") else os.path.basename(xml_path)
        found = 0
        for node in tree.iter("parentImage"):
            name = f"{node.get('id')}.png"
            path = next(
                (
                    os.path.join(d, name)
                    for d in image_dirs
                    if os.path.isfile(os.path.join(d, name))
                ),
                None,
            )
            if path is None:
                skipped.add("missing image", name)
                continue
            records.append(Record(path, report, labels, study, study, text_labels=text))
            found += 1
        if not found:  # a report whose images are all absent: kept as a text-only record
            records.append(Record("", report, labels, study, study, text_labels=text))
    return records


LAYOUT = Layout(read=read_openi)
