"""What one synthetic study *is*: anatomy, findings and devices, drawn from (seed, index).

A `Study` holds only numbers and names, never pixels, so the same study renders at any
image size and can be re-rendered with a finding removed (the tests compare a study with
its healthy twin). Geometry is in fractions of the image: u across (0 = image left =
patient's right), v down. Sizes of findings are severities in (0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The five findings of the 5x200-style evaluation set, in CheXpert's order.
FINDINGS = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
LATERAL = ("Consolidation", "Atelectasis", "Pleural Effusion")  # findings that have a side
DEVICES = ("ett", "jugular", "picc", "ng", "pacemaker")

P_NORMAL = 0.25  # studies with none of the five findings (devices may still be present)
P_AP = 0.35  # portable AP share; AP studies carry most of the devices
P_OMIT = 0.05  # share of present findings and devices left out of the report (label noise)
SUBTLE = 0.3  # severities below this are "subtle": usually reported in uncertain words
P_HEDGE_SUBTLE, P_HEDGE_CLEAR = 0.6, 0.04
NORMAL_CTR = (0.38, 0.48)
DETAIL = 12  # uniforms per finding for its fine structure
TILT_MAX = 0.0436  # in-plane patient rotation up to 2.5 degrees (radians)
# Abnormal studies follow one of these patterns; "single" feeds the 5x200 set.
PATTERNS = {
    "single": 0.6,
    "heart_failure": 0.18,
    "effusion_atelectasis": 0.1,
    "pneumonia": 0.07,
    "mixed": 0.05,
}


@dataclass(frozen=True)
class Anatomy:
    """One patient's normal chest and its exposure; findings modify it when rendered."""

    view: str  # "PA" | "AP"
    cx: float  # midline, fraction of width
    tilt: float  # in-plane rotation (patient rotation), radians
    apex: float  # lung apices, fraction of height
    dome: float  # top of the right hemidiaphragm (the higher one); larger = deeper breath
    dome_drop: float  # the left dome sits this much lower
    dome_curv: float  # dome curvature: how deep the costophrenic recesses are
    half_width: float  # inner thoracic half-width at the domes (half the CTR denominator)
    ctr: float  # cardiothoracic ratio of this patient's healthy heart
    heart_aspect: float  # heart half-height / half-width
    heart_shift: float  # heart centre toward the patient's left, fraction of its half-width
    mediastinum: float  # upper mediastinal half-width
    body: float  # body half-width
    soft: float  # soft-tissue density
    air: float  # aerated-lung density
    breast: float  # density of basal breast shadows, 0 = none
    gain: float  # exposure: 1 - exp(-gain * density)
    gamma: float  # display gamma
    noise: float  # quantum-noise sigma
    texture: float  # which rib/vessel template, in [0, 1)
    offsets: tuple[float, ...]  # noise-bank crops, in [0, 1)


@dataclass(frozen=True)
class Finding:
    """A present finding: its size, side and how the report treats it."""

    severity: float  # (0, 1]
    side: str = ""  # "left" | "right" | "bilateral" | "" (no side)
    lobe: str = ""  # consolidation: "upper" | "middle" | "lower"
    detail: tuple[float, ...] = (0.5,) * DETAIL  # uniforms placing the fine structure (patches,
    # air bronchograms, Kerley lines), drawn with the study so re-rendering is exact
    report: str = "positive"  # "positive" | "uncertain" | "omitted" (label noise)

    def __post_init__(self):
        if not 0.0 < self.severity <= 1.0:
            raise ValueError(f"Finding.severity must be in (0, 1], got {self.severity!r}")
        if self.side not in ("", "left", "right", "bilateral"):
            raise ValueError(
                f"Finding.side must be left, right, bilateral or '', got {self.side!r}"
            )
        if self.lobe not in ("", "upper", "middle", "lower"):
            raise ValueError(f"Finding.lobe must be upper, middle, lower or '', got {self.lobe!r}")
        if self.report not in ("positive", "uncertain", "omitted"):
            raise ValueError(
                f"Finding.report must be positive, uncertain or omitted, got {self.report!r}"
            )
        if len(self.detail) < DETAIL:
            raise ValueError(f"Finding.detail needs {DETAIL} uniforms, got {len(self.detail)}")


@dataclass(frozen=True)
class Study:
    seed: int
    index: int
    anatomy: Anatomy
    findings: dict[str, Finding] = field(default_factory=dict)
    devices: dict[str, float] = field(default_factory=dict)  # name -> position parameter
    device_report: dict[str, bool] = field(default_factory=dict)  # name -> mentioned

    @property
    def patient_id(self) -> str:
        return f"syn{self.seed}-p{self.index:08d}"

    @property
    def study_id(self) -> str:
        return f"syn{self.seed}-s{self.index:08d}"


def study_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that study `index` of corpus `seed` draws everything from."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([seed, index])


def sample_study(seed: int, index: int) -> tuple[Study, Draws]:
    """Draw study `index`; returns the draws too, positioned for the report's words."""
    u = Draws(study_rng(seed, index))
    anatomy = _anatomy(u)
    findings = _findings(u)
    devices, mentioned = _devices(u, anatomy.view)
    return Study(seed, index, anatomy, findings, devices, mentioned), u


def _anatomy(draws: Draws) -> Anatomy:
    # The first draws: the anatomy never depends on which findings were drawn. Python
    # floats throughout (numpy float64 scalars would upcast float32 images).
    u = [draws() for _ in range(24)]
    ap = u[0] < P_AP
    lo, hi = NORMAL_CTR
    ctr = lo + (hi - lo) * u[1]
    if ap:  # AP magnifies the heart a little; a normal heart still stays below 0.5
        ctr = min(ctr + 0.015, 0.49)
    return Anatomy(
        view="AP" if ap else "PA",
        cx=0.5 + 0.025 * (u[2] - 0.5),
        tilt=TILT_MAX * (2.0 * u[3] - 1.0),
        apex=0.10 + 0.05 * u[4],
        dome=(0.58 if ap else 0.62) + 0.10 * u[5],
        dome_drop=0.015 + 0.03 * u[6],
        dome_curv=1.4 + 1.4 * u[7],
        half_width=0.34 + 0.06 * u[8],
        ctr=float(ctr),
        heart_aspect=0.62 + 0.16 * u[9],
        heart_shift=0.25 + 0.2 * u[10],
        mediastinum=0.05 + 0.02 * u[11],
        body=0.44 + 0.05 * u[12],
        soft=0.36 + 0.12 * u[13],
        air=0.07 + 0.07 * u[14],
        breast=0.0 if u[15] < 0.5 else 0.03 + 0.06 * u[16],
        gain=1.5 + 0.9 * u[17],
        gamma=0.8 + 0.45 * u[18],
        noise=0.008 + 0.022 * u[19],
        texture=u[20],
        offsets=tuple(u[21:24]),
    )


class Draws:
    """Uniforms in [0, 1) as Python floats, fetched from a Generator 64 at a time: one numpy
    call instead of one per draw (per-draw calls cost more than the rest of a study)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.buf: list[float] = []

    def __call__(self) -> float:
        if not self.buf:
            self.buf = self.rng.random(64).tolist()[::-1]
        return self.buf.pop()

    def pick(self, options):
        """One of `options`, uniformly."""
        return options[min(int(self() * len(options)), len(options) - 1)]

    def choose(self, weights: dict):
        """A key of `weights` with probability proportional to its value."""
        x = self() * sum(weights.values())
        for key, w in weights.items():
            x -= w
            if x < 0:
                return key
        return key


def _side(u: Draws, p_right: float, p_left: float) -> str:
    x = u()
    return "right" if x < p_right else "left" if x < p_right + p_left else "bilateral"


def _pattern_findings(u: Draws) -> dict[str, str]:
    """Which findings are present (name -> side), following real-life co-occurrence."""
    pattern = u.choose(PATTERNS)
    if pattern == "single":
        name = u.pick(FINDINGS)
        sides = {"Pleural Effusion": (0.4, 0.3), "Atelectasis": (0.35, 0.4)}
        if name == "Consolidation":
            return {name: "right" if u() < 0.55 else "left"}
        if name in sides:
            return {name: _side(u, *sides[name])}
        return {name: "bilateral" if name == "Edema" else ""}
    if pattern == "heart_failure":  # one factor behind an enlarged heart, edema and fluid
        draw = (False,)
        while sum(draw) < 2:
            draw = (u() < 0.8, u() < 0.75, u() < 0.7)
        out = {}
        if draw[0]:
            out["Cardiomegaly"] = ""
        if draw[1]:
            out["Edema"] = "bilateral"
        if draw[2]:
            out["Pleural Effusion"] = _side(u, 0.3, 0.1)
        return out
    if pattern == "effusion_atelectasis":  # compressive atelectasis next to the fluid
        side = _side(u, 0.4, 0.35)
        return {"Pleural Effusion": side, "Atelectasis": side}
    if pattern == "pneumonia":  # consolidation with a parapneumonic effusion or collapse
        side = "right" if u() < 0.55 else "left"
        extra = "Pleural Effusion" if u() < 0.6 else "Atelectasis"
        return {"Consolidation": side, extra: side}
    out = {}
    while not out:
        for name in FINDINGS:
            if u() < 0.3:
                out[name] = _side(u, 0.4, 0.3) if name in LATERAL else ""
    if "Edema" in out:
        out["Edema"] = "bilateral"
    if out.get("Consolidation") == "bilateral":
        out["Consolidation"] = "right"
    return out


def _findings(u: Draws) -> dict[str, Finding]:
    if u() < P_NORMAL:
        return {}
    out = {}
    for name, side in _pattern_findings(u).items():
        severity = 0.04 + 0.96 * u()
        lobe = ""
        if name == "Consolidation":
            lobes = (
                {"lower": 0.55, "upper": 0.25, "middle": 0.2}
                if side == "right"
                else {"lower": 0.65, "upper": 0.35}
            )
            lobe = u.choose(lobes)
        p_hedge = P_HEDGE_SUBTLE if severity < SUBTLE else P_HEDGE_CLEAR
        x = u()
        report = "omitted" if x < P_OMIT else "uncertain" if x < P_OMIT + p_hedge else "positive"
        detail = tuple(u() for _ in range(DETAIL))
        out[name] = Finding(severity, side, lobe, detail, report)
    return dict(sorted(out.items(), key=lambda kv: FINDINGS.index(kv[0])))


def _devices(u: Draws, view: str) -> tuple[dict[str, float], dict[str, bool]]:
    """Lines and tubes: distractors, mostly on portable AP (ICU) films."""
    p_any = 0.5 if view == "AP" else 0.06
    if u() >= p_any:
        return {}, {}
    devices = {}
    p_each = {"ett": 0.5, "jugular": 0.35, "picc": 0.2, "ng": 0.35, "pacemaker": 0.2}
    while not devices:
        for name, p in p_each.items():
            if u() < p:
                devices[name] = u()
    if "jugular" in devices and "picc" in devices:
        del devices["picc"]
    mentioned = {name: u() >= P_OMIT for name in devices}
    return devices, mentioned
