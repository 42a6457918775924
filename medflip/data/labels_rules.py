"""The phrase tables behind `medflip.data.labels`: mentions, cues, section headers.

Written after the CheXpert labeler's lists (mention phrases, negation and uncertainty
rules), re-expressed as plain regular expressions over lower-cased text. Everything is
compiled once at import.

Mentions come in three kinds:
  finding   the phrase names the abnormality ("cardiomegaly", "effusion"): positive unless
            a cue says otherwise.
  anatomic  the phrase names a structure whose *size* is the finding ("heart size",
            "mediastinum"): it counts only when a nearby cue qualifies it -- normal (0),
            stable / borderline (-1, as CheXpert), enlarged / widened (1). "Opacity behind the
            heart" therefore says nothing about Cardiomegaly.
  hedged    a finding CheXpert labels uncertain even when asserted ("vascular congestion"
            for Edema, "blunting of the costophrenic angle" for Pleural Effusion).
"""

from __future__ import annotations

import re

_W = r"(?:[\w-]+\s+)"  # one word and its trailing space

# ------------------------------------------------------------------ mentions
# (observation, kind, pattern). Order within an observation does not matter: each kind is
# one alternation, longest alternatives first.
MENTIONS: list[tuple[str, str, str]] = [
    (
        "Enlarged Cardiomediastinum",
        "finding",
        r"mediastinal widening|widening of the (?:superior )?mediastinum"
        r"|cardiomediastinal enlargement|enlargement of the cardiomediastinal silhouette",
    ),
    (
        "Enlarged Cardiomediastinum",
        "anatomic",
        r"cardiomediastinal(?: silhouette| contours?| size| shadow| structures)?"
        r"|(?:superior )?mediastinum\b|mediastinal (?:silhouette|contours?|configuration|width"
        r"|shadow)|hilar contours?|hila\b",
    ),
    (
        "Cardiomegaly",
        "finding",
        r"cardiomegaly|cardiac enlargement|enlarged heart|enlargement of the (?:cardiac silhouette"
        r"|heart|cardiac shadow)|enlarged cardiac (?:silhouette|shadow|contour)",
    ),
    (
        "Cardiomegaly",
        "anatomic",
        r"heart size|cardiac (?:size|silhouette|shadow|contours?)"
        r"|heart(?! failure)\b",
    ),
    (
        "Lung Opacity",
        "finding",
        r"opacit\w*|opacif\w*|infiltrat\w*|air[- ]?space (?:disease|process|opacit\w*)"
        r"|ground[- ]glass|increased density|decreased translucency|reticular (?:pattern|markings?"
        r"|opacit\w*)|reticulation|interstitial (?:markings?|pattern|lung disease|opacit\w*"
        r"|abnormalit\w*)|peribronchial (?:thickening|cuffing)|(?<!pleural )(?<!pleural-)"
        r"(?<!parenchymal )scar(?:ring|s)?\b",
    ),
    (
        "Lung Lesion",
        "finding",
        r"(?<!calcified )nodul\w*|\bmass(?:es)?\b(?! effect)|tumou?rs?|neoplas\w*|carcinoma"
        r"|cavitary lesions?|lump\b|(?<!lytic )(?<!sclerotic )(?<!blastic )(?<!osseous )"
        r"(?<!bony )(?<!bone )(?<!skin )(?<!cutaneous )lesions?\b",
    ),
    (
        "Edema",
        "finding",
        r"(?<!soft tissue )(?<!subcutaneous )(?<!wall )edema\w*|heart failure|\bchf\b"
        r"|fluid overload",
    ),
    (
        "Edema",
        "hedged",
        r"(?:pulmonary |vascular |venous |interstitial )(?:congestion|engorgement)"
        r"|vascular (?:prominence|indistinctness)|indistinctness"
        r"|prominen\w* (?:of the )?(?:pulmonary )?vascul\w*",
    ),
    ("Consolidation", "finding", r"consolidat\w*"),
    ("Pneumonia", "finding", r"(?:broncho)?pneumonias?|infections?|infectious(?: process)?"),
    ("Atelectasis", "finding", r"atelecta\w*|collapse[ds]?\b"),
    ("Pneumothorax", "finding", r"pneumothora(?:x|ces)"),
    (
        "Pleural Effusion",
        "finding",
        r"pleural (?:and|or) pericardial effusions?|pleural fluid"
        r"|(?<!pericardial )(?<!joint )effusions?",
    ),
    (
        "Pleural Effusion",
        "hedged",
        r"blunting of the (?:" + _W + r"){0,3}costophrenic (?:angles?|sulc\w+)"
        r"|blunted (?:" + _W + r"){0,2}costophrenic (?:angles?|sulc\w+)"
        r"|costophrenic (?:angle |sulcus )?blunting|costophrenic angles? (?:is |are )?blunted",
    ),
    ("Pleural Effusion", "anatomic", r"costophrenic (?:angles?|sulc\w+)"),
    (
        "Pleural Other",
        "finding",
        r"pleural thickening|pleural (?:and |or )?(?:parenchymal )?scar\w*|pleuro-?parenchymal"
        r" scar\w*|pleural-parenchymal scar\w*|fibrothorax|pleural plaques?|pleural fibrosis",
    ),
    ("Fracture", "finding", r"fractur\w*|\bfx\b"),
    (
        "Support Devices",
        "finding",
        r"tubes?\b|catheters?|pacemakers?|pacers?\b|picc\b|defibrillator"
        r"|\b(?:a?icd)\b|(?:picc|central|venous|arterial|midline|jugular|ij|subclavian|dialysis"
        r"|swan[- ]ganz|port|pa|catheter|support|monitoring|vascular) lines?|lines and tubes"
        r"|(?:pacing|pacer|pacemaker|transvenous|epicardial|icd|aicd|ekg|ecg) (?:leads?|wires?)"
        r"|stents?\b|port-?a-?cath|mediport|\bport\b|\bdrains?\b|cannula\w*|\becmo\b|impella|lvad"
        r"|balloon pump|iabp|tracheostomy|prosthetic (?:\w+ )?valve|valve replacement"
        r"|(?:orthopedic |surgical )?hardware|\bscrews?\b|\bplates?\b(?![- ]?like)|coils?\b"
        r"|(?:support |monitoring )?devices?\b|apparatus|equipment",
    ),
    # Abnormal findings outside the 14: they keep No Finding blank (CheXpert's rule).
    (
        "_other",
        "finding",
        r"emphysema\w*|\bcopd\b|hyperinfla\w*|hyperexpan\w*|scoliosis|kyphosis|degenerat\w*"
        r"|calcifi\w*|granuloma\w*|hernia\w*|pneumomediastinum|pneumoperitoneum|atheroscl\w*"
        r"|osteopeni\w*|deformit\w*|bronchiectasis|bronchitis|aspiration|hemorrhage|hematoma"
        r"|contusion|metasta\w*|eventration|volume loss|cephalization|bullae|bulla\b|bullous"
        r"|osteophyt\w*|(?:wall|bronchial) thickening|elevation|elevated (?:\w+ )?hemidiaphragm",
    ),
]

# Phrases that are mentions of two observations at once.
MULTI_MENTIONS: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    (r"hydropneumothora(?:x|ces)", (("Pneumothorax", "finding"), ("Pleural Effusion", "finding"))),
    (
        r"cardiac and mediastinal (?:contours?|silhouettes?)",
        (("Cardiomegaly", "anatomic"), ("Enlarged Cardiomediastinum", "anatomic")),
    ),
]

# ------------------------------------------------------------------ cues
_AUX = (
    r"(?:(?:is|are|was|were|has been|have been|remains?|appears?|seems?|looks?)\s+)?"
    r"(?:now\s+|otherwise\s+|again\s+|also\s+|still\s+|currently\s+|essentially\s+)?"
)
_ADV = (
    r"(?:(?:very |mildly|moderately|severely|markedly|slightly|minimally|massively|grossly"
    r"|significantly|substantially|somewhat|persistently|again|still|now)\s+)?"
)

# (name, pattern). One alternation of named groups; at equal start the first listed wins,
# so compound cues ("cannot be excluded", "no new") come before their parts ("no").
CUES: list[tuple[str, str]] = [
    (
        "unc_special",
        r"(?:cannot|can ?not|can't|could not|may not|not)\s+(?:be\s+)?(?:entirely\s+|completely"
        r"\s+|totally\s+|definitely\s+|reliably\s+|fully\s+)?(?:excluded|exclude|ruled out"
        r"|rule out)|no new\b|(?:difficult|hard) to (?:exclude|rule out|assess)"
        r"|" + _AUX + r"(?:not (?:well |clearly |entirely |adequately "
        r"|optimally )(?:seen|evaluated|assessed|visualized)|poorly (?:seen|evaluated|assessed"
        r"|visualized))|(?:limited|suboptimal) (?:evaluation|assessment) (?:for|of)",
    ),
    ("versus", r"versus|vs\b\.?|(?:(?:is|are) )?favou?red over|more likely than"),
    (
        "unc_post",
        r"(?:is|are|was|were)\s+(?:also\s+|most\s+|more\s+)?(?:possible"
        r"|(?:un|less |not )?likely|probable|suspected|questioned|favored|considered"
        r"|a consideration|a possibility)\b"
        r"|" + _AUX + r"(?:possibly|probably|likely|questionably|borderline) (?:\w+ )?(?:enlarged"
        r"|prominent|widened)|(?:may|might|could) (?:also )?be " + _ADV + r"(?:enlarged"
        r"|prominent|widened|present|seen|noted)",
    ),
    (
        "neg_post",
        _AUX + r"(?:no longer|not) (?:\w+ )?(?:seen|identified|visualized|present|appreciated"
        r"|evident|demonstrated|detected|noted|visible|apparent|enlarged|widened)\b"
        r"|(?:has|have) (?:\w+ )?(?:resolved|cleared|been removed)|"
        + _AUX
        + r"(?:resolved|cleared|removed|absent|ruled out|been removed|been resolved)\b",
    ),
    (
        "normal",
        _AUX + r"(?:within normal limits|normal[- ]sized?|normal in (?:size|caliber|contour)"
        r"|of normal (?:size|caliber)|top[- ]normal|(?:at )?(?:the )?upper limits? of normal"
        r"|not enlarged|normal|unremarkable|sharp|preserved)\b",
    ),
    (
        "stable",
        _AUX + r"(?:stable|unchanged|not (?:significantly )?changed|similar (?:in appearance )?"
        r"(?:to|compared to|as compared to|with) (?:the )?(?:prior|previous)\w*)\b"
        r"|(?:no|without) (?:significant |interval |appreciable |substantial )*change\b",
    ),
    ("pass", r"to (?:suggest|indicate|explain|represent)\b"),
    (
        "attr_unc",  # attributive: "no opacity suspicious for pneumonia" stays negated
        r"suspicious (?:for|of)|concern(?:ing)? (?:for|of)|worrisome (?:for|of)|suggestive of"
        r"|suggesting",
    ),
    (
        "unc",
        r"(?:may|might|could|would)(?:\s+(?:also|possibly|potentially|well))?(?:\s+(?:be|have))?"
        r"(?:\s+(?:(?:consistent|compatible) with|due to|secondary to|related to|represent\w*"
        r"|reflect\w*|indicat\w*|includ\w*|signify|suggest\w*))?"
        r"|possibl[ey]|probabl[ey]|(?:less |more |most )?likely|unlikely"
        r"|suspect\w*|suspicion (?:for|of)|concern(?:ing)? (?:for|of)"
        r"|question(?:able|ably)?(?: of)?|suggest\w*|presum\w*|borderline|equivocal"
        r"|indeterminate|differential(?: diagnosis)?(?: includes?| including| of)?"
        r"|possibility of|consider\w*|favou?r\w*|secondary to",
    ),
    ("qmark", r"\?"),
    (
        "neg",
        r"no|not|without|absence of|absent|negative for|free of|clear of|(?:interval )?"
        r"resolution of|resolved|clearing of|removal of|rule out|r/o|rather than|never|nor"
        r"|neither|exclud\w*",
    ),
    (
        "size",
        _AUX + _ADV + r"(?:enlarged|enlargement(?: of)?|increased(?: in size)?|large|prominent"
        r"|widened|widening(?: of)?|globular|dilated)\b",
    ),
    ("attr_pos", r"(?:consistent|compatible) with|in keeping with|diagnostic of"),
    ("pos", r"there (?:is|are|has been|have been)\b(?!\s+(?:no|not)\b)"),
    ("or", r"or|and/or"),
]

# Cue name -> (decision it gives, directions, reach). reach "clause" = to the clause edge;
# a number = at most that many characters, with no blocking word in between.
CUE_RULES: dict[str, tuple[str, str, object]] = {
    "unc_special": ("unc!", "both", "clause"),
    "unc_post": ("unc", "post", 60),
    "neg_post": ("neg", "post", 60),
    "normal": ("neg", "both", 40),
    "stable": ("stable", "both", 40),
    "pass": ("pass", "pre", "clause"),
    "attr_unc": ("unc", "pre", "clause"),
    "unc": ("unc", "pre", "clause"),
    "qmark": ("unc", "both", 20),
    "versus": ("unc", "both", "clause"),
    "neg": ("neg", "pre", "clause"),
    "size": ("size", "both", 40),
    "attr_pos": ("pos", "pre", "clause"),
    "pos": ("pos", "pre", "clause"),
    "or": ("or", "both", 40),
}
# Cues that describe the mention before them; after a negated one they are negated too.
ATTRIBUTIVE = frozenset({"attr_unc", "attr_pos"})
ANATOMIC_REACH = 40  # any cue further than this from an anatomic mention does not qualify it

# Words that end a short-reach cue's scope: "normal heart size with a small effusion".
GAP_BLOCK = re.compile(
    r"\b(?:is|are|was|were|has|have|with|without|which|there|but|no|not|seen|noted|present"
    r"|identified|demonstrated)\b"
)

# Phrases that look like cues but are not: blanked (same length) before matching.
PSEUDO = re.compile(
    r"\bno (?:significant |interval |appreciable |substantial |definite )*(?:increase|decrease"
    r"|worsening|improvement|progression)\b|\bnot only\b|\bgram[- ]negative\b"
    r"|\b(?:partial(?:ly)?|incomplete(?:ly)?|near(?:ly)?(?:[- ]complete(?:ly)?)?|almost"
    r"|slowly) resol\w*|\bresolving\b|\bclear(?:ed)? (?:the|a|an) \w+"
)

# Clause edges: sentence ends, semicolons, colons, blank lines, and contrastive words.
# Punctuation first and word starts only, so the scan stays cheap.
BOUNDARY = re.compile(
    r"[.!](?<!\bvs\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bdr\.)(?=\s|$)|[;:](?!\d)|\n\s*\n"
    r"|(?<!\w)(?=\w)(?:but|however|although|though|whereas|except|aside from|apart from"
    r"|nevertheless|nonetheless|otherwise)\b"
)

# Section headers ("IMPRESSION:"); names map to a canonical section.
SECTION_NAMES = {
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "opinion": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "findings": "findings",
    "finding": "findings",
    "report": "findings",
    "indication": "indication",
    "indications": "indication",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "clinical indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "technique": "technique",
    "examination": "examination",
    "exam": "examination",
    "procedure": "technique",
    "notification": "notification",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "recommendation(s)": "recommendation",
    "wet read": "wet read",
    "addendum": "addendum",
}
SECTION_HEADER = re.compile(
    r"(?:^|(?<=[\s.]))("
    + "|".join(re.escape(n) for n in sorted(SECTION_NAMES, key=len, reverse=True))
    + r")\s*:",
    re.IGNORECASE | re.MULTILINE,
)
# Sections that never describe the current image: dropped when no impression/findings.
NON_FINDING_SECTIONS = frozenset(
    {
        "indication",
        "history",
        "comparison",
        "technique",
        "examination",
        "notification",
        "recommendation",
        "wet read",
    }
)


def compile_mentions() -> tuple[re.Pattern, dict[str, tuple[tuple[str, str], ...]]]:
    """One regex for all mentions and {group name: ((observation, kind), ...)}.

    Matches never overlap: at one position the first group listed wins, so compound
    phrases come first, then findings, then anatomic words ("costophrenic angle blunting"
    is the hedged effusion, not the bare angle).
    """
    merged: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for pattern, targets in MULTI_MENTIONS:
        merged.setdefault(targets, []).append(pattern)
    rank = {"finding": 0, "hedged": 0, "anatomic": 1}
    for obs, kind, pattern in sorted(MENTIONS, key=lambda m: rank[m[1]]):
        merged.setdefault(((obs, kind),), []).append(pattern)
    groups = {f"m{i}": targets for i, targets in enumerate(merged)}
    body = "|".join(f"(?P<m{i}>{'|'.join(pats)})" for i, pats in enumerate(merged.values()))
    # "(?<!\w)(?=\w)": only word starts are tried, which halves the scan time.
    return re.compile(rf"(?<!\w)(?=\w)(?:{body})"), groups


def compile_cues() -> re.Pattern:
    """All cues as one alternation of named groups (match.lastgroup is the cue name)."""
    # Word-bounded on both sides, except the question mark, which follows a word.
    words = "|".join(
        rf"(?P<{name}>(?:{pattern})(?!\w))" for name, pattern in CUES if name != "qmark"
    )
    return re.compile(rf"(?<!\w)(?=\w)(?:{words})|(?P<qmark>\?)")
