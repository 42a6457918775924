"""Report text -> the 14 CheXpert observations (knowledge extraction).

A CheXpert-labeler-style rule system in pure Python + `re` (no NLP parser):

1. Section: the IMPRESSION if it has text, else FINDINGS, else the whole report less the
   sections that never describe the image (indication, history, comparison, technique ...).
2. Mentions: phrase tables per observation (`labels_rules.MENTIONS`), with look-alikes
   excluded ("pericardial effusion" is not Pleural Effusion, "calcified nodule" not a Lung
   Lesion, "soft tissue edema" not Edema).
3. Each mention is classified by the cues in its clause -- a clause ends at a sentence end,
   ";", ":", or a contrastive word ("but", "however", "although"), so a cue never leaks
   across them. The nearest cue before the mention and the nearest after it decide:
   negation ("no", "without", "free of", "negative for", "resolved", "is not seen",
   "normal heart size") gives 0, uncertainty ("possible", "may represent", "cannot be
   excluded", "versus", "likely", "suggestive of", "question of", "no new") gives -1,
   otherwise 1. "No X or Y" negates both (the "no" reaches to the clause end); an
   un-negated "X or Y" is uncertain, as in CheXpert; "no opacity concerning for pneumonia"
   negates pneumonia too (a descriptive cue inherits the negation of its head).
4. Aggregation per observation as CheXpert: positive beats uncertain beats negative;
   no mention is NaN. No Finding is 1 when nothing but Support Devices is positive or
   uncertain (abnormalities outside the 14, e.g. emphysema, also block it), else NaN.

Choices where CheXpert is followed rather than intuition: "vascular congestion",
"pulmonary congestion", "vascular prominence" are uncertain Edema; "CHF"/"heart failure"
positive or uncertain adds an uncertain Cardiomegaly; a stable/unchanged heart or
mediastinal silhouette is uncertain; "blunting of the costophrenic angle" is uncertain
Pleural Effusion (sharp angles are negative). An empty report is all NaN.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from medflip.data import labels_rules as rules

# CheXpert's order; every label vector in medflip uses it.
OBSERVATIONS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
_MENTION_RE, _MENTION_GROUPS = rules.compile_mentions()
_CUE_RE = rules.compile_cues()


def section(text: str, name: str) -> str:
    """The body of section `name` ("impression", "findings", ...), "" when absent.

    Headers are matched case-insensitively ("IMPRESSION:", "Findings:"); synonyms map to
    one name ("CONCLUSION:" is the impression). Repeated sections are joined.
    """
    canon = rules.SECTION_NAMES.get(name.lower().strip())
    if canon is None:
        raise ValueError(
            f"section: unknown section name {name!r}; "
            f"known: {sorted(set(rules.SECTION_NAMES.values()))}"
        )
    return " ".join(b.strip() for sec, b in _sections(text) if sec == canon and b.strip())


def _sections(text: str) -> list[tuple[str, str]]:
    """[(canonical name, body)], the text before the first header named ""."""
    heads = list(rules.SECTION_HEADER.finditer(text))
    if not heads:
        return [("", text)]
    out = [("", text[: heads[0].start()])]
    ends = [h.start() for h in heads[1:]] + [len(text)]
    for h, end in zip(heads, ends, strict=True):
        out.append((rules.SECTION_NAMES[h.group(1).lower()], text[h.end() : end]))
    return out


def _select(text: str) -> str:
    """IMPRESSION if it has text, else FINDINGS, else everything that may describe the image."""
    secs = _sections(text)
    if len(secs) == 1:
        return text
    for wanted in ("impression", "findings"):
        body = " ".join(b for s, b in secs if s == wanted)
        if body.strip():
            return body
    return " ".join(b for s, b in secs if s not in rules.NON_FINDING_SECTIONS)


def _find_mentions(text: str) -> list[tuple[int, int, str, str]]:
    """[(start, end, observation, kind)] in text order."""
    return [
        (m.start(), m.end(), obs, kind)
        for m in _MENTION_RE.finditer(text)
        for obs, kind in _MENTION_GROUPS[m.lastgroup]
    ]


def _in_reach(text, gap_start, gap_end, reach, anatomic, finding_starts) -> bool:
    """Whether a cue whose gap to the mention is text[gap_start:gap_end] can qualify it."""
    if anatomic:
        reach = rules.ANATOMIC_REACH if reach == "clause" else min(reach, rules.ANATOMIC_REACH)
        # "no consolidation behind the heart": the cue belongs to the finding in between.
        i = bisect.bisect_left(finding_starts, gap_start)
        if i < len(finding_starts) and finding_starts[i] < gap_end:
            return False
    if reach == "clause":
        return True
    gap = text[gap_start:gap_end]
    return len(gap) <= reach and rules.GAP_BLOCK.search(gap) is None


def _walk(cues, mention, side, text, finding_starts) -> str | None:
    """The decision of the nearest cue on `side` ("pre"/"post") that applies to the mention."""
    start, end, _, kind = mention
    anatomic = kind == "anatomic"
    for i, (c_start, c_end, name) in enumerate(cues):
        decision, dirs, reach = rules.CUE_RULES[name]
        if decision in ("or", "pass") or dirs not in (side, "both"):
            continue  # transparent here: "no opacity to suggest pneumonia" stays negated
        if decision in ("stable", "size") and not anatomic:
            continue  # "stable effusion", "large effusion" are still effusions
        gap = (c_end, start) if side == "pre" else (end, c_start)
        if not _in_reach(text, gap[0], gap[1], reach, anatomic, finding_starts):
            continue
        if name in rules.ATTRIBUTIVE and _negated_head(cues[i + 1 :], c_start, text):
            return "neg"  # "no focal consolidation concerning for pneumonia"
        return decision
    return None


def _negated_head(further, attr_start, text) -> bool:
    """Whether the next cue further back is a "no" within a short phrase of `attr_start`."""
    if not further or further[0][2] != "neg":
        return False
    gap = text[further[0][1] : attr_start]
    return len(gap) <= 50 and rules.GAP_BLOCK.search(gap) is None


def _classify(mention, pre, post, text, finding_starts) -> float | None:
    """1 / 0 / -1 for one mention, or None when an anatomic mention is unqualified."""
    decisions = {
        _walk(pre, mention, "pre", text, finding_starts),
        _walk(post, mention, "post", text, finding_starts),
    }
    if "unc!" in decisions:  # "cannot be excluded" outranks the negation inside it
        return UNCERTAIN
    if "neg" in decisions:
        return NEGATIVE
    if "unc" in decisions:
        return UNCERTAIN
    kind = mention[3]
    if kind == "anatomic":
        if "stable" in decisions:
            return UNCERTAIN
        return POSITIVE if "size" in decisions else None
    return UNCERTAIN if kind == "hedged" else POSITIVE


def _or_linked(mentions, cues, text) -> set[int]:
    """Indices of non-anatomic mentions joined by "or" to another mention ("X or Y")."""
    linked: set[int] = set()
    spans = [(s, e, i) for i, (s, e, _, k) in enumerate(mentions) if k != "anatomic"]
    starts = [c[0] for c in cues]
    for c_start, c_end, name in cues:
        if name != "or":
            continue
        before = [
            (c_start - e, i)
            for s, e, i in spans
            if e <= c_start and _short_gap(text, e, c_start, cues, starts)
        ]
        after = [
            (s - c_end, i)
            for s, e, i in spans
            if s >= c_end and _short_gap(text, c_end, s, cues, starts)
        ]
        if before and after:
            linked.update((min(before)[1], min(after)[1]))
    return linked


def _short_gap(text, a, b, cues, starts) -> bool:
    """A few plain words: "atelectasis or (developing) pneumonia", no cue or clause edge."""
    gap = text[a:b]
    k = bisect.bisect_left(starts, a)
    return (
        len(gap) <= 30
        and (k == len(cues) or cues[k][0] >= b)
        and rules.GAP_BLOCK.search(gap) is None
        and not any(ch in gap for ch in ".;:")
    )


def _mention_labels(text: str) -> list[tuple[str, float, str]]:
    """[(observation, label, mention text)] for every classified mention in `text`."""
    bounds = [m.start() for m in rules.BOUNDARY.finditer(text)]
    cues = [(m.start(), m.end(), m.lastgroup) for m in _CUE_RE.finditer(text)]
    mentions = _find_mentions(text)
    finding_starts = sorted(s for s, _, _, k in mentions if k != "anatomic")
    by_clause: dict[int, list] = {}
    for cue in cues:
        by_clause.setdefault(bisect.bisect_right(bounds, cue[0]), []).append(cue)
    linked = _or_linked(mentions, cues, text)
    out = []
    for i, mention in enumerate(mentions):
        clause = by_clause.get(bisect.bisect_right(bounds, mention[0]), [])
        pre = [c for c in reversed(clause) if c[1] <= mention[0]]
        post = [c for c in clause if c[0] >= mention[1]]
        label = _classify(mention, pre, post, text, finding_starts)
        if label == POSITIVE and i in linked:
            label = UNCERTAIN
        if label is not None:
            out.append((mention[2], label, text[mention[0] : mention[1]]))
    return out


def _aggregate(mention_labels) -> dict[str, float]:
    """CheXpert's rule per observation: 1 beats -1 beats 0; unmentioned is NaN."""
    seen: dict[str, set[float]] = {}
    for obs, label, phrase in mention_labels:
        seen.setdefault(obs, set()).add(label)
        if obs == "Edema" and label != NEGATIVE and phrase in ("chf", "heart failure"):
            seen.setdefault("Cardiomegaly", set()).add(UNCERTAIN)
    out = {}
    for obs in OBSERVATIONS[1:]:
        labels = seen.get(obs, set())
        out[obs] = next((v for v in (POSITIVE, UNCERTAIN, NEGATIVE) if v in labels), math.nan)
    finding = any(
        label != NEGATIVE
        for obs, labels in seen.items()
        if obs != "Support Devices"
        for label in labels
    )
    return {"No Finding": math.nan if finding else POSITIVE, **out}


def extract_labels(text: str) -> dict[str, float]:
    """Report text -> {observation: 1.0 positive, 0.0 negative, -1.0 uncertain, NaN unmentioned}.

    Every name in OBSERVATIONS is a key. Uses the IMPRESSION section (FINDINGS when the
    impression is missing or empty; text without section headers is used whole).
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_labels: text must be str, got {type(text).__name__}")
    body = _select(text).lower()
    if not body.strip():
        return dict.fromkeys(OBSERVATIONS, math.nan)
    body = rules.PSEUDO.sub(lambda m: " " * len(m.group()), body)
    return _aggregate(_mention_labels(body))


def label_vector(text: str) -> np.ndarray:
    """extract_labels(text) as float32 [14] in OBSERVATIONS order (NaN = not mentioned)."""
    labels = extract_labels(text)
    return np.array([labels[o] for o in OBSERVATIONS], dtype=np.float32)
