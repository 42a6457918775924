"""The embedded corpus: procedural chest-radiograph-like images paired with reports.

`SyntheticCXR(seed, size, image_size)[i]` is a pure function of (seed, i): the same bytes
in any process and in any access order. Each item holds the image, its report, the labels
the report codes (CheXpert style, like `medflip.data.labels.extract_labels`) and the truth
(what the image shows). Pieces: `anatomy` (what a study is: numbers drawn from
(seed, i)), `renderer` + `findings` + `textures` + `canvas` (pixels), `report` (words and
the codes they carry); `__main__` draws a labelled grid for a person to look at.

    python -m medflip.data.synthetic --grid grid.png [--n 24] [--image-size 128] [--seed 0]
"""

from __future__ import annotations

import numpy as np

from medflip.data.labels import OBSERVATIONS
from medflip.data.synthetic.anatomy import FINDINGS, LATERAL, Study, sample_study
from medflip.data.synthetic.renderer import geometry, render
from medflip.data.synthetic.report import write_report

__all__ = ["SyntheticCXR", "FINDINGS", "sample_study", "render", "truth", "write_report"]

# CheXpert hierarchy: a child finding implies its parent in the truth vector.
_PARENTS = {
    "Lung Opacity": ("Edema", "Consolidation", "Atelectasis"),
    "Enlarged Cardiomediastinum": ("Cardiomegaly",),
}


def truth(study: Study) -> dict:
    """What the image really shows: labels (float32 [14], 1 present / 0 absent), severity
    and side per present finding, view, the drawn CTR, and the devices."""
    labels = np.zeros(len(OBSERVATIONS), np.float32)
    for name in study.findings:
        labels[OBSERVATIONS.index(name)] = 1.0
    for parent, children in _PARENTS.items():
        if any(c in study.findings for c in children):
            labels[OBSERVATIONS.index(parent)] = 1.0
    if study.devices:
        labels[OBSERVATIONS.index("Support Devices")] = 1.0
    labels[OBSERVATIONS.index("No Finding")] = float(not study.findings)
    return {
        "labels": labels,
        "severity": {n: f.severity for n, f in study.findings.items()},
        "side": {n: f.side for n, f in study.findings.items() if n in LATERAL},
        "view": study.anatomy.view,
        "ctr": geometry(study).ctr,
        "devices": tuple(study.devices),
        "report": {n: f.report for n, f in study.findings.items()},  # positive/uncertain/omitted
    }


class SyntheticCXR:
    """Map-style dataset of `size` synthetic studies drawn from corpus `seed`.

    Item i: {"image": float32 [H, W] in [0, 1], "report": str, "labels": float32 [14]
    (report-coded: 1 / 0 / -1 / NaN), "truth": dict (see `truth`), "patient_id": str,
    "study_id": str}.
    """

    def __init__(self, seed: int = 0, size: int = 1000, image_size: int = 64):
        checks = (("seed", seed, 0), ("size", size, 0), ("image_size", image_size, 16))
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"SyntheticCXR: {name} must be an integer >= {low}, got {value!r}")
        self.seed, self.size, self.image_size = int(seed), int(size), int(image_size)

    def __len__(self) -> int:
        return self.size

    def _check(self, i) -> int:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"SyntheticCXR index must be an integer, got {type(i).__name__}")
        i = int(i) + (self.size if i < 0 else 0)
        if not 0 <= i < self.size:
            raise IndexError(f"SyntheticCXR index {i} out of range for size {self.size}")
        return i

    def study(self, i: int) -> Study:
        """The parameters of study i (no pixels, no words)."""
        return sample_study(self.seed, self._check(i))[0]

    def __getitem__(self, i: int) -> dict:
        study, rng = sample_study(self.seed, self._check(i))
        text, labels = write_report(study, rng)
        return {
            "image": render(study, self.image_size),
            "report": text,
            "labels": labels,
            "truth": truth(study),
            "patient_id": study.patient_id,
            "study_id": study.study_id,
        }

    def images(self, indices) -> np.ndarray:
        """Just the images of `indices`: float32 [B, H, W] (skips the reports)."""
        idx = [self._check(i) for i in indices]
        out = np.empty((len(idx), self.image_size, self.image_size), np.float32)
        for j, i in enumerate(idx):
            out[j] = render(sample_study(self.seed, i)[0], self.image_size)
        return out

    def reports(self, indices) -> list[tuple[str, np.ndarray]]:
        """Just (report, labels) of `indices` (skips the pixels)."""
        out = []
        for i in indices:
            study, rng = sample_study(self.seed, self._check(i))
            out.append(write_report(study, rng))
        return out
