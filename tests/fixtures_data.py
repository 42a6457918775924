"""Tiny dataset trees in the published layouts, written with real files (PIL, CSV, XML)."""

from __future__ import annotations

import csv
import gzip
import os

import numpy as np
from PIL import Image

from medflip.data.labels import OBSERVATIONS

MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough, evaluate for pneumonia

 FINDINGS:

 The heart size is normal.  There is a large right pleural effusion.

 IMPRESSION:

 Large right pleural effusion.
"""


def write_image(path: str, size=(48, 40), fmt: str | None = None, seed: int = 0) -> None:
    """A small real grayscale image (PIL infers JPEG/PNG from the suffix)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path, format=fmt)


def write_corrupt(path: str) -> None:
    """A .jpg whose bytes are not an image."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")


def write_csv(path: str, header: list[str], rows: list[list], gz: bool = False) -> None:
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def label_cells(positive: dict[str, float]) -> list[str]:
    """CSV cells in OBSERVATIONS order: given values, blank elsewhere."""
    return ["" if n not in positive else f"{positive[n]:.1f}" for n in OBSERVATIONS]


def make_mimic(root: str, reports_beside: bool = False, corrupt: bool = True) -> dict:
    """MIMIC-CXR-JPG: 3 patients, 4 studies, 6 images (+1 corrupt, +1 listed but missing).

    Study s50000002 has no chexpert row, so its labels come from its report.
    """
    os.makedirs(root, exist_ok=True)
    studies = {  # (subject, study) -> dicom ids
        ("10000001", "50000001"): ["d1", "d2"],
        ("10000001", "50000002"): ["d3"],
        ("11000002", "50000003"): ["d4", "d5"],
        ("12000003", "50000004"): ["d6"],
    }
    reports_dir = (
        os.path.join(os.path.dirname(root), "mimic-cxr-reports", "files")
        if reports_beside
        else os.path.join(root, "mimic-cxr-reports", "files")
    )
    meta, labels, split = [], [], []
    for k, ((subject, study), dicoms) in enumerate(studies.items()):
        folder = os.path.join("files", f"p{subject[:2]}", f"p{subject}", f"s{study}")
        for j, dicom in enumerate(dicoms):
            write_image(os.path.join(root, folder, f"{dicom}.jpg"), seed=k * 10 + j)
            meta.append([dicom, subject, study, "PA" if j == 0 else "LATERAL"])
            split.append([dicom, study, subject, "test" if subject == "12000003" else "train"])
        rpath = os.path.join(reports_dir, f"p{subject[:2]}", f"p{subject}", f"s{study}.txt")
        os.makedirs(os.path.dirname(rpath), exist_ok=True)
        with open(rpath, "w") as fh:
            fh.write(MIMIC_REPORT.replace("right", "left") if k else MIMIC_REPORT)
        if study != "50000002":
            labels.append([subject, study] + label_cells({"Cardiomegaly": 1.0, "Edema": -1.0}))
    meta.append(["missing", "12000003", "50000004", "PA"])  # listed, no file
    if corrupt:
        folder = os.path.join(root, "files", "p12", "p12000003", "s50000004")
        write_corrupt(os.path.join(folder, "bad.jpg"))
        meta.append(["bad", "12000003", "50000004", "AP"])
    write_csv(
        os.path.join(root, "mimic-cxr-2.0.0-metadata.csv.gz"),
        ["dicom_id", "subject_id", "study_id", "ViewPosition"],
        meta,
        gz=True,
    )
    write_csv(
        os.path.join(root, "mimic-cxr-2.0.0-chexpert.csv.gz"),
        ["subject_id", "study_id", *OBSERVATIONS],
        labels,
        gz=True,
    )
    write_csv(
        os.path.join(root, "mimic-cxr-2.0.0-split.csv.gz"),
        ["dicom_id", "study_id", "subject_id", "split"],
        split,
        gz=True,
    )
    return {"images": 6 + int(corrupt), "missing": 1}


CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]


def make_chexpert(root: str, prefix: str = "CheXpert-v1.0-small") -> None:
    """CheXpert-small: train (2 patients, 3 images; one listed but missing) + valid (1 image)."""
    base = os.path.join(root, prefix)
    rows = []
    for patient, study, view, frontal, appa, pos in [
        ("patient00001", "study1", "view1_frontal", "Frontal", "AP", {"Cardiomegaly": 1.0}),
        ("patient00001", "study1", "view2_lateral", "Lateral", "", {"Cardiomegaly": 1.0}),
        ("patient00002", "study1", "view1_frontal", "Frontal", "PA", {"Edema": -1.0}),
        ("patient00003", "study1", "view1_frontal", "Frontal", "PA", {"Edema": 1.0}),
    ]:
        rel = f"train/{patient}/{study}/{view}.jpg"
        if patient != "patient00003":
            write_image(os.path.join(base, rel))
        rows.append([f"{prefix}/{rel}", "Female", 60, frontal, appa, *label_cells(pos)])
    write_csv(os.path.join(base, "train.csv"), CHEXPERT_HEADER, rows)
    rel = "valid/patient64541/study1/view1_frontal.jpg"
    write_image(os.path.join(base, rel))
    write_csv(
        os.path.join(base, "valid.csv"),
        CHEXPERT_HEADER,
        [[f"{prefix}/{rel}", "Male", 70, "Frontal", "PA", *label_cells({"No Finding": 1.0})]],
    )


OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr"/>
  <uId id="{uid}"/>
  <MedlineCitation><Article><Abstract>
    <AbstractText Label="COMPARISON">None.</AbstractText>
    <AbstractText Label="INDICATION">XXXX-year-old with chest pain.</AbstractText>
    <AbstractText Label="FINDINGS">{findings}</AbstractText>
    <AbstractText Label="IMPRESSION">{impression}</AbstractText>
  </Abstract></Article></MedlineCitation>
  {images}
</eCitation>
"""


def make_openi(root: str, image_dir: str = "NLMCXR_png") -> None:
    """IU-Xray: CXR1 (2 images), CXR2 (1 image, 1 missing), CXR3 (empty report), CXR4 corrupt."""
    xml_dir = os.path.join(root, "ecgen-radiology")
    os.makedirs(xml_dir, exist_ok=True)
    specs = [
        (
            "CXR1",
            "Mild cardiomegaly.",
            "Heart is enlarged.",
            ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
        ),
        ("CXR2", "Small left pleural effusion.", "", ["CXR2_1_IM-0652-1001", "CXR2_1_missing"]),
        ("CXR3", "", "", ["CXR3_1_IM-0001-1001"]),
    ]
    for uid, impression, findings, images in specs:
        tags = "\n".join(
            f'<parentImage id="{i}"><figureId>F1</figureId></parentImage>' for i in images
        )
        with open(os.path.join(xml_dir, f"{uid[3:]}.xml"), "w") as fh:
            fh.write(
                OPENI_XML.format(uid=uid, impression=impression, findings=findings, images=tags)
            )
        for name in images:
            if "missing" not in name:
                write_image(os.path.join(root, image_dir, f"{name}.png"))
    with open(os.path.join(xml_dir, "4.xml"), "w") as fh:
        fh.write("<eCitation><unclosed>")


# Reports as real ones read: the IMPRESSION says only "no acute disease" while the FINDINGS
# state what the image shows. (findings, impression, positives the report states)
FINDINGS_ONLY_REPORTS = [
    (
        "The heart is enlarged. The lungs are clear.",
        "No acute cardiopulmonary disease.",
        ("Cardiomegaly",),
    ),
    (
        "Streaky opacity at the left lung base consistent with atelectasis. No pleural effusion.",
        "No acute cardiopulmonary process.",
        ("Lung Opacity", "Atelectasis"),
    ),
    ("Old healed right rib fracture. The lungs are clear.", "No acute disease.", ("Fracture",)),
    (
        "Small right pleural effusion. Heart size is normal.",
        "No acute cardiopulmonary abnormality.",
        ("Pleural Effusion",),
    ),
    (
        "Mild cardiomegaly. Left basilar atelectasis.",
        "Stable appearance of the chest.",
        ("Cardiomegaly", "Atelectasis"),
    ),
    (
        "Dense right upper lobe consolidation.",
        "Right upper lobe pneumonia.",
        ("Consolidation", "Pneumonia"),
    ),
    (
        "Heart size is normal. Small left pleural effusion.",
        "Small left pleural effusion.",
        ("Pleural Effusion",),
    ),
    (
        "Right PICC line with tip in the SVC. The lungs are clear.",
        "No acute findings.",
        ("Support Devices",),
    ),
]


def make_openi_findings_only(root: str) -> dict[str, tuple[str, ...]]:
    """OpenI tree of FINDINGS_ONLY_REPORTS, one image each; returns study id -> positives."""
    xml_dir = os.path.join(root, "ecgen-radiology")
    os.makedirs(xml_dir, exist_ok=True)
    truth = {}
    for k, (findings, impression, positives) in enumerate(FINDINGS_ONLY_REPORTS):
        uid, image = f"CXR{100 + k}", f"CXR{100 + k}_1_IM-0001-1001"
        tags = f'<parentImage id="{image}"><figureId>F1</figureId></parentImage>'
        with open(os.path.join(xml_dir, f"{100 + k}.xml"), "w") as fh:
            fh.write(
                OPENI_XML.format(uid=uid, impression=impression, findings=findings, images=tags)
            )
        write_image(os.path.join(root, "NLMCXR_png", f"{image}.png"), seed=k)
        truth[uid] = positives
    return truth


CLASS_REPORTS = {  # one report per class, each positive for exactly that evaluation class
    "Atelectasis": "Left basilar atelectasis.",
    "Cardiomegaly": "Moderate cardiomegaly.",
    "Consolidation": "Right lower lobe consolidation.",
    "Edema": "Mild pulmonary edema.",
    "Pleural Effusion": "Small left pleural effusion.",
    "No Finding": "No acute cardiopulmonary process.",
}


def make_class_manifest(root: str, train_per_class: int, test_per_class: int) -> str:
    """manifest.csv of one-patient studies: per class in CLASS_REPORTS, `train_per_class`
    train and `test_per_class` test rows (16 px images). Returns the manifest path."""
    rows = []
    for c, report in enumerate(CLASS_REPORTS.values()):
        for k in range(train_per_class + test_per_class):
            rel = f"img/{c}_{k}.png"
            write_image(os.path.join(root, rel), size=(16, 16), seed=c * 1000 + k)
            split = "train" if k < train_per_class else "test"
            rows.append([rel, f"FINDINGS: None. IMPRESSION: {report}", f"p{c}-{k}", split])
    path = os.path.join(root, "manifest.csv")
    write_csv(path, ["image_path", "report", "patient_id", "split"], rows)
    return path
