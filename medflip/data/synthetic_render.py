"""Study -> image. Density is composed on a half-resolution grid, brought to full size,
given full-resolution detail (ribs, vessels, lines, tubes), then exposed like film:
I = (1 - exp(-gain * density)) ** gamma, plus noise. Bright = dense.

Coordinates are fractions of the image: x from the patient's midline (negative = image
left = patient's right), y down from the top. The lo-res frame is rotated by the patient's
tilt; full-resolution detail is not (the tilt is a few degrees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medflip.data.synthetic_anatomy import Study
from medflip.data.synthetic_findings import add_findings_full, add_findings_lo
from medflip.data.synthetic_textures import APEX_REF, Banks, add_sprite, banks

SOFT_EDGE = 1.0  # soft-mask edge width, lo-res pixels
D_MAX = 1.15  # density that exposes to full white


DOME_PEAK = 0.45  # each dome peaks this far out (fraction of the thoracic half-width)
DOME_LATERAL = 2.2  # the costophrenic side of a dome falls this much faster
HEART_SHEAR = 0.4  # the heart's apex sits low and to the patient's left


@dataclass(frozen=True)
class Geometry:
    """The chest as drawn: the patient's anatomy after findings moved things."""

    cx: float  # midline
    apex: float
    dome_r: float  # top of each hemidiaphragm (y)
    dome_l: float
    curv: float  # dome curvature
    half_width: float
    ctr: float  # cardiothoracic ratio as drawn
    heart_w: float  # heart half-width = ctr * half_width
    heart_h: float  # heart half-height
    heart_x: float  # heart centre, from the midline
    heart_y: float
    shift: float  # mediastinal shift (toward atelectasis)
    carina: float  # y of the carina

    def dome(self, side: str) -> float:
        return self.dome_r if side == "right" else self.dome_l

    def dome_y(self, x, dome):
        """y of a hemidiaphragm of top `dome` at lateral offsets x (array or float)."""
        d = abs(x) - DOME_PEAK * self.half_width
        if isinstance(d, np.ndarray):
            dm = np.maximum(d, 0.0)
            return d * d * (0.6 * self.curv) + dm * dm * ((DOME_LATERAL - 0.6) * self.curv) + dome
        return dome + d * d * self.curv * (DOME_LATERAL if d > 0 else 0.6)

    def costophrenic(self, side: str) -> float:
        """y of the lateral costophrenic angle on one side."""
        return self.dome_y(self.half_width, self.dome(side))


def side_sign(side: str) -> float:
    """Patient's right is image left (negative x)."""
    return -1.0 if side == "right" else 1.0


def geometry(study: Study) -> Geometry:
    """Effective geometry: cardiomegaly sets the CTR, atelectasis raises a dome and shifts
    the mediastinum toward itself (volume loss)."""
    a = study.anatomy
    f = study.findings
    ctr = a.ctr
    if "Cardiomegaly" in f:
        ctr = 0.5 + 0.2 * f["Cardiomegaly"].severity  # >= 0.5, rising with severity
    dome_r, dome_l, shift = a.dome, a.dome + a.dome_drop, 0.0
    if "Atelectasis" in f:
        at = f["Atelectasis"]
        lift = 0.07 * at.severity * (0.7 if at.side == "bilateral" else 1.0)
        dome_r -= lift if at.side in ("right", "bilateral") else 0.0
        dome_l -= lift if at.side in ("left", "bilateral") else 0.0
        if at.side != "bilateral":
            shift = side_sign(at.side) * 0.03 * at.severity
    heart_w = ctr * a.half_width
    heart_h = a.heart_aspect * heart_w
    dome_mid = 0.5 * (dome_r + dome_l)
    return Geometry(
        cx=a.cx, apex=a.apex, dome_r=dome_r, dome_l=dome_l, curv=a.dome_curv,
        half_width=a.half_width, ctr=float(ctr), heart_w=heart_w, heart_h=heart_h,
        heart_x=shift + a.heart_shift * heart_w, heart_y=dome_mid - 0.45 * heart_h,
        shift=shift, carina=a.apex + 0.19,
    )


def ramp(z: np.ndarray, k: float) -> np.ndarray:
    """Soft step from 0 (z < -0.5/k) to 1 (z > 0.5/k); overwrites nothing."""
    t = z * k
    t += 0.5
    return np.clip(t, 0.0, 1.0, out=t)


def _frame(b: Banks, study: Study) -> tuple[np.ndarray, np.ndarray]:
    """Lo-res coordinates in the patient's (tilted) frame: x from the midline, y down."""
    a = study.anatomy
    c, s = math.cos(a.tilt), math.sin(a.tilt)  # Python floats keep the arrays float32
    x = b.u0 * c
    x += b.v0 * s
    x += 0.5 - a.cx
    y = b.v0 * c
    y -= b.u0 * s
    y += 0.5
    return x, y


def _anatomy_lo(x, y, g: Geometry, study: Study, k: float):
    """Lo-res density, aerated-lung mask and inside-the-chest-wall mask, each [G, G],
    of the healthy chest. (Few, whole-array numpy calls: this runs for every image.)"""
    a = study.anatomy
    ax = np.abs(x)
    tw = g.half_width
    # body: a cylinder (thickest at the midline) with sloping shoulders and a narrow neck
    s = np.clip(y * 6.5, 0.0, 1.0)
    half = s * (2.0 - s)
    half *= a.body - 0.11
    half += 0.11
    q = x / half
    path = np.sqrt(np.maximum(1.0 - q * q, 0.0))
    body = ramp(half - ax, k)
    # diaphragm: two domes, each highest mid-hemithorax, falling fastest laterally
    d = ax - DOME_PEAK * tw
    dm = np.maximum(d, 0.0)
    dome_y = d * d * (0.6 * g.curv)
    dome_y += dm * dm * ((DOME_LATERAL - 0.6) * g.curv)
    dome_y += (x < 0) * np.float32(g.dome_r - g.dome_l)  # float32 scalar: bool * it is f32
    dome_y += g.dome_l
    below = ramp(y - dome_y, k)
    # lungs: tapered apices widening toward the bases, cut by the domes and the mediastinum
    r = 1.0 - np.clip((y - g.apex) * (1 / (0.7 * (g.dome_r - g.apex))), 0.0, 1.0)
    thorax = ramp(tw - ax - tw * r * r * r, 0.35 * k)  # inside the inner chest wall
    xm = np.abs(x - g.shift) if g.shift else ax
    lung = ramp(xm - a.mediastinum, k)
    lung *= thorax
    lung *= 1.0 - below
    mediastinum, thick = _mediastinum(x, y, xm, g, a, k)
    lung *= 1.0 - mediastinum
    density = path * (0.65 * a.soft) + 0.35 * a.soft
    density *= body
    density += ((path * 0.35 + 0.22) * body - density) * below  # liver / spleen
    density += (a.air - density) * lung
    density += (thick * 0.12 + 0.46 - density) * mediastinum
    return density, lung, thorax


def _mediastinum(x, y, xm, g: Geometry, a, k: float):
    """Heart (a sheared ellipse resting on the domes; shearing keeps every row's width, so
    the CTR is exact), aortic knob and upper mediastinum: mask and heart thickness."""
    dy = y - g.heart_y
    hx = x - g.heart_x - HEART_SHEAR * dy
    hx *= 1 / g.heart_w
    dy *= 1 / g.heart_h
    t = 1.0 - hx * hx - dy * dy
    heart = ramp(t, k * 0.5 * g.heart_w)
    thick = np.sqrt(np.maximum(t, 0.0))  # projected thickness: brighter centre
    kx = x - (g.shift + a.mediastinum + 0.005)
    ky = y - (g.carina - 0.035)
    knob = ramp(0.028**2 - kx * kx - ky * ky, k / 0.056)
    upper = ramp(a.mediastinum + 0.012 * (y - g.apex) - xm, k) * (y < g.heart_y)
    np.maximum(heart, knob, out=heart)
    np.maximum(heart, upper, out=heart)
    return heart, thick


def _crop(bank: np.ndarray, oy: int, ox: int, size: int) -> np.ndarray:
    return bank[oy : oy + size, ox : ox + size]


def _upsample(b: Banks, lo: np.ndarray) -> np.ndarray:
    return b.up @ lo @ b.up.T


def _add_masked(b: Banks, density: np.ndarray, template: np.ndarray, py: int, px: int,
                lo: np.ndarray) -> None:
    """density += template crop * lo-res mask, nearest-neighbour: when S = 2 G, one strided
    product per 2 x 2 phase on the lo-res grid (cheap); else a bilinear upsample."""
    size = b.size
    if size == 2 * b.grid:
        for i in (0, 1):
            for j in (0, 1):
                density[i::2, j::2] += template[py + i : py + size : 2, px + j : px + size : 2] * lo
    else:
        density += template[py : py + size, px : px + size] * _upsample(b, lo)


def _sprites(density: np.ndarray, g: Geometry, a, b: Banks) -> None:
    """Gastric bubble under the left dome; breast shadows over the bases."""
    size = b.size
    h, w = b.bubble.shape
    top = int((g.dome_l + 0.06) * size) - h // 2
    add_sprite(density, b.bubble, top, int((g.cx + 0.45 * g.half_width) * size) - w // 2, 1.0)
    if a.breast > 0:
        w = b.breasts.shape[1]
        top = int((0.5 * (g.dome_r + g.dome_l) + 0.02) * size) - b.breast_low
        add_sprite(density, b.breasts, top, int(g.cx * size) - w // 2, a.breast)


def render(study: Study, image_size: int) -> np.ndarray:
    """The radiograph of `study`: float32 [image_size, image_size] in [0, 1]."""
    b = banks(image_size)
    a = study.anatomy
    g = geometry(study)
    k = b.grid / SOFT_EDGE
    x, y = _frame(b, study)
    density, lung, thorax = _anatomy_lo(x, y, g, study, k)
    extras = add_findings_lo(density, lung, thorax, x, y, g, study, b)
    oy, ox = (int(o * b.grid) for o in a.offsets[:2])
    density += b.mottle[oy : oy + b.grid, ox : ox + b.grid]
    density = _upsample(b, density)
    t = b.template(g.half_width, a.texture)
    py = int(round(b.pad + (APEX_REF - g.apex) * image_size))
    px = int(round(b.pad + (0.5 - g.cx) * image_size))
    py, px = min(max(py, 0), 2 * b.pad), min(max(px, 0), 2 * b.pad)
    density += _crop(b.bones[a.view][t], py, px, image_size)
    vessels = b.vessels[t]
    edema = study.findings.get("Edema")
    if edema is not None:  # edema blurs the vessel outlines
        blur = min(1.0, 0.4 + 0.8 * edema.severity)
        vessels = (1 - blur) * vessels + blur * b.vessels_blur[t]
    _add_masked(b, density, vessels, py, px, lung)
    _sprites(density, g, a, b)
    add_findings_full(density, g, study, b, extras)
    return _expose(density, a, b)


def _expose(density: np.ndarray, a, b: Banks) -> np.ndarray:
    """Film response 1 - exp(-gain * density), display gamma, quantum noise; in [0, 1]."""
    img = np.exp(density * -a.gain, out=density)
    scale = 1.0 / (1.0 - math.exp(-a.gain * D_MAX))
    img *= -scale
    img += scale
    np.maximum(img, 0.0, out=img)
    # gamma as Schlick's bias curve x / (x + c (1 - x)): matches x**gamma at 0.5, and is
    # three cheap operations instead of a power
    c = 2.0**a.gamma - 1.0
    img /= img * (1.0 - c) + c
    size = b.size
    ny, nx = int(a.offsets[2] * size), int(a.offsets[0] * size)
    sigma = a.noise * (1.3 if a.view == "AP" else 1.0)
    img += b.noise[ny : ny + size, nx : nx + size] * sigma
    return np.clip(img, 0.0, 1.0, out=img)
