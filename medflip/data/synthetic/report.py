"""Radiology reports for synthetic studies, and the labels each report codes.

Every sentence the generator can write is in the tables below, with the CheXpert codes it
carries (P = 1.0 positive, U = -1.0 uncertain, N = 0.0 negative; an observation no sentence
codes is NaN). A report's label vector aggregates its sentences like CheXpert: positive
beats uncertain beats negative, and No Finding is 1.0 when no observation other than
Support Devices is positive or uncertain (NaN otherwise). `medflip.data.labels` must read
the same codes from the same text.

Slots: {sev} severity word (effusion: trace / small / moderate / large; consolidation:
small / moderate / large; others: mild / moderate / severe), {sevly} its adverb (mildly /
moderately / severely), {side} right / left / bilateral, {base} "right basilar" / "left
basilar" / "bibasilar" / "bilateral basilar", {at_base} "the right lung base" / "the left
lung base" / "both lung bases", {where} e.g. "right lower lobe", {s}/{is}/{a} plural
agreement for bilateral effusions ("effusions" / "are" / ""), {cm} 2-6. A capitalised slot
({Sev}, {Side}, {Base}, {Where}) capitalises the first letter.

EXAMINATION and INDICATION lines never contain an observation word.
"""

from __future__ import annotations

import numpy as np

from medflip.data.labels import OBSERVATIONS
from medflip.data.synthetic.anatomy import Draws, Study

P, U, N = 1.0, -1.0, 0.0
_OP = {"Lung Opacity": P}  # sentences that say "opacity"

# Present findings, reported as present (FINDINGS section).
POSITIVE = {
    "Cardiomegaly": [
        ("{Sev} cardiomegaly.", {"Cardiomegaly": P}),
        ("The heart is {sevly} enlarged.", {"Cardiomegaly": P}),
        ("There is {sev} enlargement of the cardiac silhouette.", {"Cardiomegaly": P}),
        ("Heart size is {sevly} enlarged.", {"Cardiomegaly": P}),
    ],
    "Edema": [
        ("{Sev} pulmonary edema.", {"Edema": P}),
        ("There is {sev} pulmonary edema.", {"Edema": P}),
        ("{Sev} interstitial pulmonary edema with Kerley B lines.", {"Edema": P}),
        (
            "Perihilar haziness and vascular indistinctness consistent with {sev} pulmonary edema.",
            {"Edema": P},
        ),
    ],
    "Consolidation": [
        ("{Sev} consolidation in the {where}.", {"Consolidation": P}),
        ("{Where} consolidation with air bronchograms.", {"Consolidation": P}),
        (
            "Patchy opacity in the {where} consistent with {sev} consolidation.",
            {"Consolidation": P, **_OP},
        ),
        ("There is {sev} airspace consolidation in the {where}.", {"Consolidation": P}),
    ],
    "Atelectasis": [
        ("{Sev} {base} atelectasis.", {"Atelectasis": P}),
        ("{Base} opacity consistent with {sev} atelectasis.", {"Atelectasis": P, **_OP}),
        ("There is {sev} atelectasis at {at_base}.", {"Atelectasis": P}),
        ("{Sev} {base} atelectasis with volume loss.", {"Atelectasis": P}),
    ],
    "Pleural Effusion": [
        ("{Sev} {side} pleural effusion{s}.", {"Pleural Effusion": P}),
        ("There {is} {a}{sev} {side} pleural effusion{s}.", {"Pleural Effusion": P}),
        ("{Side} pleural effusion{s}, {sev} in size.", {"Pleural Effusion": P}),
    ],
}
# Extra wording for a trace effusion (blunted costophrenic angle only).
TRACE_EFFUSION = [
    (
        "Blunting of the {side} costophrenic angle{s}, consistent with trace pleural effusion{s}.",
        {"Pleural Effusion": P},
    ),
]

# Present (usually subtle) findings, reported in uncertain words.
UNCERTAIN = {
    "Cardiomegaly": [
        ("Possible mild cardiomegaly.", {"Cardiomegaly": U}),
        ("The heart may be mildly enlarged.", {"Cardiomegaly": U}),
        ("Mild cardiomegaly cannot be excluded.", {"Cardiomegaly": U}),
    ],
    "Edema": [
        ("Possible mild pulmonary edema.", {"Edema": U}),
        ("Mild interstitial edema cannot be excluded.", {"Edema": U}),
        ("Pulmonary edema cannot be excluded.", {"Edema": U}),
    ],
    "Consolidation": [
        ("Possible early consolidation in the {where}.", {"Consolidation": U}),
        ("{Where} consolidation cannot be excluded.", {"Consolidation": U}),
    ],
    "Atelectasis": [
        ("Possible {base} atelectasis.", {"Atelectasis": U}),
        ("{Base} atelectasis cannot be excluded.", {"Atelectasis": U}),
    ],
    "Pleural Effusion": [
        ("Possible {side} pleural effusion{s}.", {"Pleural Effusion": U}),
        ("{A}{side} pleural effusion{s} cannot be excluded.", {"Pleural Effusion": U}),
    ],
}
# Used for an uncertain lower-zone atelectasis or consolidation when the other is absent.
EITHER = (
    "Findings at {at_base} may represent atelectasis versus consolidation.",
    {"Atelectasis": U, "Consolidation": U},
)

# Absent findings, sometimes negated.
NEGATIVE = {
    "Cardiomegaly": [
        ("Heart size is normal.", {"Cardiomegaly": N}),
        ("The heart is normal in size.", {"Cardiomegaly": N}),
        ("No cardiomegaly.", {"Cardiomegaly": N}),
        ("The cardiac silhouette is within normal limits.", {"Cardiomegaly": N}),
    ],
    "Edema": [
        ("No pulmonary edema.", {"Edema": N}),
        ("There is no pulmonary edema.", {"Edema": N}),
        ("No evidence of pulmonary edema.", {"Edema": N}),
    ],
    "Consolidation": [
        ("No focal consolidation.", {"Consolidation": N}),
        ("There is no focal consolidation.", {"Consolidation": N}),
        ("No consolidation is seen.", {"Consolidation": N}),
    ],
    "Atelectasis": [
        ("No atelectasis.", {"Atelectasis": N}),
        ("No evidence of atelectasis.", {"Atelectasis": N}),
    ],
    "Pleural Effusion": [
        ("No pleural effusion.", {"Pleural Effusion": N}),
        ("There is no pleural effusion.", {"Pleural Effusion": N}),
        ("No pleural effusions are seen.", {"Pleural Effusion": N}),
    ],
}
# Joint negations (consolidation and effusion both absent).
NEGATIVE_JOINT = [
    ("No focal consolidation or pleural effusion.", {"Consolidation": N, "Pleural Effusion": N}),
    (
        "No focal consolidation, pleural effusion, or pneumothorax.",
        {"Consolidation": N, "Pleural Effusion": N, "Pneumothorax": N},
    ),
]

DEVICES = {
    "ett": [
        ("Endotracheal tube terminates {cm} cm above the carina.", {"Support Devices": P}),
        (
            "Endotracheal tube in standard position, {cm} cm above the carina.",
            {"Support Devices": P},
        ),
    ],
    "jugular": [
        (
            "Right internal jugular central venous catheter terminates in the mid SVC.",
            {"Support Devices": P},
        ),
        ("Right IJ catheter tip projects over the SVC.", {"Support Devices": P}),
    ],
    "picc": [
        ("Right PICC line terminates in the lower SVC.", {"Support Devices": P}),
        ("Right upper extremity PICC with tip in the SVC.", {"Support Devices": P}),
    ],
    "ng": [
        ("Enteric tube courses below the diaphragm, tip in the stomach.", {"Support Devices": P}),
        ("Nasogastric tube terminates in the stomach.", {"Support Devices": P}),
    ],
    "pacemaker": [
        (
            "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
            {"Support Devices": P},
        ),
        ("Dual-lead pacemaker device projects over the left chest.", {"Support Devices": P}),
    ],
}

# Distractors: look-alikes and negations of things the images never show.
NO_PNEUMOTHORAX = [
    ("No pneumothorax.", {"Pneumothorax": N}),
    ("There is no pneumothorax.", {"Pneumothorax": N}),
]
MEDIASTINUM = ("The mediastinal contours are normal.", {"Enlarged Cardiomediastinum": N})
LUNGS_CLEAR = ("The lungs are clear.", {})
OTHER_DISTRACTORS = [
    ("No displaced rib fracture.", {"Fracture": N}),
    ("Known small pericardial effusion, better seen on prior CT.", {}),  # NOT pleural
    ("Small pericardial effusion on prior CT.", {}),  # NOT pleural
    ("The visualized osseous structures are unremarkable.", {}),
    ("No acute osseous abnormality.", {}),
]

# IMPRESSION lines for reported findings (positive); uncertain ones reuse UNCERTAIN.
IMPRESSION = {
    "Cardiomegaly": [
        ("{Sev} cardiomegaly.", {"Cardiomegaly": P}),
        ("Cardiomegaly.", {"Cardiomegaly": P}),
    ],
    "Edema": [
        ("{Sev} pulmonary edema.", {"Edema": P}),
        ("Findings consistent with {sev} pulmonary edema.", {"Edema": P}),
    ],
    "Consolidation": [
        ("{Where} consolidation.", {"Consolidation": P}),
        ("{Where} consolidation, concerning for pneumonia.", {"Consolidation": P, "Pneumonia": U}),
    ],
    "Atelectasis": [("{Base} atelectasis.", {"Atelectasis": P})],
    "Pleural Effusion": [("{Sev} {side} pleural effusion{s}.", {"Pleural Effusion": P})],
}
NORMAL_IMPRESSION = [
    ("No acute cardiopulmonary process.", {}),
    ("No acute cardiopulmonary abnormality.", {}),
    ("No acute intrathoracic process.", {}),
]

EXAMINATION = {
    "PA": ["CHEST (PA AND LAT)", "CHEST (PA)"],
    "AP": ["CHEST (PORTABLE AP)", "CHEST (AP)"],
}
INDICATION = [
    "Shortness of breath.",
    "Cough.",
    "Fever and cough.",
    "Chest pain.",
    "Dyspnea.",
    "Hypoxia.",
    "Preoperative evaluation.",
    "Follow-up.",
    "Weakness.",
    "Routine evaluation.",
    "Tachypnea.",
    "Hypotension.",
]

P_NEGATE = {
    "Cardiomegaly": 0.65,
    "Edema": 0.35,
    "Consolidation": 0.5,
    "Atelectasis": 0.15,
    "Pleural Effusion": 0.5,
}

_SEV3 = ("mild", "moderate", "severe")
_SEV_WORDS = {"Consolidation": ("small", "moderate", "large")}
_EFFUSION = ((0.15, "trace"), (0.4, "small"), (0.7, "moderate"), (1.01, "large"))


def severity_word(name: str, severity: float) -> str:
    """The report's word for a severity in (0, 1]."""
    if name == "Pleural Effusion":
        return next(word for top, word in _EFFUSION if severity < top)
    level = 0 if severity < 1 / 3 else 1 if severity < 2 / 3 else 2
    return _SEV_WORDS.get(name, _SEV3)[level]


def _slots(name: str, finding, u: Draws) -> dict[str, str]:
    side = finding.side
    bilateral = side == "bilateral"
    sev = severity_word(name, finding.severity)
    slots = {
        "sev": sev,
        "sevly": {"mild": "mildly", "moderate": "moderately", "severe": "severely"}.get(sev, ""),
        "side": side,
        "base": ("bibasilar" if u() < 0.6 else "bilateral basilar")
        if bilateral
        else f"{side} basilar",
        "at_base": "both lung bases" if bilateral else f"the {side} lung base",
        "where": f"{side} {finding.lobe} lobe",
        "s": "s" if bilateral else "",
        "is": "are" if bilateral else "is",
        "a": "" if bilateral else "a ",
        "a_side": side if bilateral else f"a {side}",
    }
    slots.update({k[0].upper() + k[1:]: v[:1].upper() + v[1:] for k, v in slots.items()})
    return slots


class _Writer:
    """Picks sentences and remembers the codes of everything it wrote."""

    def __init__(self, u: Draws):
        self.u = u
        self.codes: dict[str, list[float]] = {}

    def pick(self, options: list):
        return self.u.pick(options)

    def say(self, entry: tuple[str, dict], slots: dict | None = None) -> str:
        template, codes = entry
        for obs, code in codes.items():
            self.codes.setdefault(obs, []).append(code)
        return template.format(**slots) if slots else template


def _finding_sentence(w: _Writer, name: str, finding, study: Study, slots: dict) -> str:
    if finding.report == "uncertain":
        other = {"Atelectasis": "Consolidation", "Consolidation": "Atelectasis"}.get(name)
        basal = name == "Atelectasis" or finding.lobe == "lower"
        if other and basal and other not in study.findings and w.u() < 0.35:
            return w.say(EITHER, slots)
        return w.say(w.pick(UNCERTAIN[name]), slots)
    options = POSITIVE[name]
    if name == "Pleural Effusion" and slots["sev"] == "trace":
        options = options[:2] + TRACE_EFFUSION  # no "trace in size"
    return w.say(w.pick(options), slots)


def _negations(w: _Writer, study: Study, sections: dict[str, list[str]]) -> None:
    absent = [n for n in P_NEGATE if n not in study.findings and n not in w.codes]
    u = w.u
    if "Consolidation" in absent and "Pleural Effusion" in absent and u() < 0.3:
        sections["pleura"].append(w.say(w.pick(NEGATIVE_JOINT)))
        absent = [n for n in absent if n not in ("Consolidation", "Pleural Effusion")]
    for name in absent:
        if u() < P_NEGATE[name]:
            section = {"Cardiomegaly": "heart", "Pleural Effusion": "pleura"}.get(name, "lungs")
            sections[section].append(w.say(w.pick(NEGATIVE[name])))


def _distractors(w: _Writer, study: Study, sections: dict[str, list[str]]) -> None:
    u = w.u
    if "Pneumothorax" not in w.codes and u() < 0.45:
        sections["pleura"].append(w.say(w.pick(NO_PNEUMOTHORAX)))
    if u() < 0.15:
        sections["heart"].append(w.say(MEDIASTINUM))
    lung_findings = {"Edema", "Consolidation", "Atelectasis"} & set(study.findings)
    if not lung_findings and not sections["lungs"] and u() < 0.4:
        sections["lungs"].append(w.say(LUNGS_CLEAR))
    if u() < 0.25:
        sections["other"].append(w.say(w.pick(OTHER_DISTRACTORS)))


def _impression(w: _Writer, study: Study, slots: dict[str, dict]) -> list[str]:
    said = [(n, f) for n, f in study.findings.items() if f.report != "omitted"]
    said.sort(key=lambda nf: -nf[1].severity)  # the worst first, at most three
    out = []
    for name, finding in said[:3]:
        table = UNCERTAIN if finding.report == "uncertain" else IMPRESSION
        out.append(w.say(w.pick(table[name]), slots[name]))
    return out or [w.say(w.pick(NORMAL_IMPRESSION))]


def code_labels(codes: dict[str, list[float]]) -> np.ndarray:
    """Sentence codes -> the 14-vector, aggregated like CheXpert (1 > -1 > 0; NaN unsaid)."""
    labels = np.full(len(OBSERVATIONS), np.nan, dtype=np.float32)
    for obs, values in codes.items():
        labels[OBSERVATIONS.index(obs)] = P if P in values else U if U in values else N
    finding = any(v in (P, U) for o, vs in codes.items() if o != "Support Devices" for v in vs)
    labels[OBSERVATIONS.index("No Finding")] = np.nan if finding else P
    return labels


def write_report(study: Study, draws: Draws | np.random.Generator) -> tuple[str, np.ndarray]:
    """The report for `study` and its coded labels (float32 [14], OBSERVATIONS order).
    `draws`: what `sample_study` returned beside the study (or any Generator)."""
    w = _Writer(draws if isinstance(draws, Draws) else Draws(draws))
    sections: dict[str, list[str]] = {
        "devices": [],
        "heart": [],
        "lungs": [],
        "pleura": [],
        "other": [],
    }
    for name, param in study.devices.items():
        if study.device_report.get(name, True):
            sections["devices"].append(w.say(w.pick(DEVICES[name]), {"cm": 2 + round(4 * param)}))
    slots = {}
    for name, finding in study.findings.items():
        slots[name] = _slots(name, finding, w.u)
        if finding.report == "omitted":
            continue
        section = {"Cardiomegaly": "heart", "Pleural Effusion": "pleura"}.get(name, "lungs")
        sections[section].append(_finding_sentence(w, name, finding, study, slots[name]))
    _negations(w, study, sections)
    _distractors(w, study, sections)
    findings = " ".join(s for part in sections.values() for s in part)
    impression = " ".join(_impression(w, study, slots))
    text = (
        f"EXAMINATION: {w.pick(EXAMINATION[study.anatomy.view])}\n"
        f"INDICATION: {w.pick(INDICATION)}\n"
        f"FINDINGS: {findings}\n"
        f"IMPRESSION: {impression}"
    )
    return text, code_labels(w.codes)
