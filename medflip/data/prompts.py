"""Class prompts (MedCLIP-style severity x location x subtype) and text from labels.

Prompts use the words radiologists write for each class, so a text tower that learned
report language can read them; the corpus tokenizer is trained on all of them, so no
prompt word is unknown. Every function here is deterministic in its arguments.
"""

from __future__ import annotations

import itertools

import numpy as np

from medflip.data.labels import OBSERVATIONS

# The five CheXpert competition classes of the 5x200-style set, in its usual order.
CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
NO_FINDING = "No Finding"

# class -> (severity words, location words, subtype phrases); "" = the slot left out.
PROMPT_WORDS = {
    "Atelectasis": (
        ("", "mild", "moderate", "severe", "minimal"),
        (
            "",
            "right basilar",
            "left basilar",
            "bibasilar",
            "bilateral basilar",
            "right lower lobe",
            "left lower lobe",
        ),
        (
            "atelectasis",
            "subsegmental atelectasis",
            "linear atelectasis",
            "atelectasis with volume loss",
        ),
    ),
    "Cardiomegaly": (
        ("", "mild", "moderate", "severe", "stable", "marked"),  # not "borderline": uncertain
        ("",),
        (
            "cardiomegaly",
            "enlargement of the cardiac silhouette",
            "enlarged heart",
            "enlarged cardiac silhouette",
        ),
    ),
    "Consolidation": (
        ("", "small", "moderate", "large", "patchy", "focal"),
        (
            "right lower lobe",
            "left lower lobe",
            "right upper lobe",
            "left upper lobe",
            "right middle lobe",
            "right lung base",
            "left lung base",
        ),
        ("consolidation", "airspace consolidation", "consolidation with air bronchograms"),
    ),
    "Edema": (
        ("", "mild", "moderate", "severe"),
        ("", "interstitial", "perihilar", "bilateral"),
        ("pulmonary edema", "edema", "pulmonary edema with kerley b lines"),
    ),
    "Pleural Effusion": (
        ("", "trace", "small", "moderate", "large"),
        ("right", "left", "bilateral"),
        ("pleural effusion", "pleural effusion with blunting of the costophrenic angle"),
    ),
    NO_FINDING: (
        ("",),
        ("",),
        (
            "no acute cardiopulmonary process",
            "no acute cardiopulmonary abnormality",
            "no acute intrathoracic process",
            "the lungs are clear",
            "lungs are clear",
            "normal chest radiograph",
            "heart size is normal and the lungs are clear",
            "no focal consolidation, pleural effusion, or pneumothorax",
            "no acute findings",
        ),
    ),
}

# Words for the other observations, used when text is made from labels.
_OTHER_PHRASES = {
    "Enlarged Cardiomediastinum": "enlarged cardiomediastinal silhouette",
    "Lung Opacity": "lung opacity",
    "Lung Lesion": "lung nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Pleural Other": "pleural thickening",
    "Fracture": "rib fracture",
    "Support Devices": "support devices in place",
}


def all_prompts(cls: str) -> list[str]:
    """Every severity x location x subtype phrase of `cls`, in a fixed order."""
    if cls not in PROMPT_WORDS:
        raise ValueError(f"no prompts for {cls!r}; choose one of {', '.join(PROMPT_WORDS)}")
    return [" ".join(w for w in combo if w) for combo in itertools.product(*PROMPT_WORDS[cls])]


def _templates(cls: str, half: int) -> list[str]:
    """The phrases of `cls` whose subtype phrase sits at an even (half 0) or odd (half 1)
    position: two disjoint template sets, each still covering every severity/location."""
    if cls not in PROMPT_WORDS:
        raise ValueError(f"no prompts for {cls!r}; choose one of {', '.join(PROMPT_WORDS)}")
    sev, loc, sub = PROMPT_WORDS[cls]
    mine = tuple(p for k, p in enumerate(sub) if k % 2 == half)
    return [" ".join(w for w in combo if w) for combo in itertools.product(sev, loc, mine)]


def prompt_templates(cls: str) -> list[str]:
    """Zero-shot prompt phrases of `cls`: disjoint from `caption_templates`, so on a
    label-only source (CheXpert) zero-shot never matches the very sentences it trained on."""
    return _templates(cls, 0)


def caption_templates(cls: str) -> list[str]:
    """Phrases that write training captions from labels (`labels_to_text`)."""
    return _templates(cls, 1)


def class_prompts(cls: str, n: int, seed: int = 0) -> list[str]:
    """`n` prompts for `cls` (a CLASSES name or "No Finding"), distinct while they last;
    drawn from `prompt_templates` only."""
    pool = prompt_templates(cls)
    rng = np.random.default_rng([seed, sorted(PROMPT_WORDS).index(cls)])
    order = rng.permutation(len(pool))
    return [pool[order[k % len(pool)]] for k in range(n)]


def binary_prompts(n: int, seed: int = 0) -> list[list[str]]:
    """[No Finding prompts, Consolidation prompts]: index = binary target (1 = Consolidation)."""
    return [class_prompts(NO_FINDING, n, seed), class_prompts("Consolidation", n, seed)]


def prompt_corpus() -> list[str]:
    """Every prompt of every class (for the tokenizer's training text)."""
    return [p for cls in PROMPT_WORDS for p in all_prompts(cls)]


def labels_to_text(labels: np.ndarray, key: int) -> str:
    """A report-like text for an image that has labels but no report (CheXpert).

    Positive classes get a caption phrase (`caption_templates`, disjoint from the zero-shot
    prompts), other positive observations a fixed phrase, uncertain ones "possible ...";
    nothing positive or uncertain gives a No Finding caption phrase.
    `key` (e.g. the record index) picks the prompt wording deterministically.
    """
    parts = []
    for k, name in enumerate(OBSERVATIONS):
        value = labels[k]
        if name == NO_FINDING or value not in (1.0, -1.0):
            continue
        pool = caption_templates(name) if name in CLASSES else [_OTHER_PHRASES[name]]
        phrase = pool[(key * 7919 + k) % len(pool)]
        parts.append(phrase if value == 1.0 else f"possible {phrase}")
    if not parts:
        pool = caption_templates(NO_FINDING)
        parts.append(pool[key % len(pool)])
    return ". ".join(p[0].upper() + p[1:] for p in parts) + "."
