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

from medflip.data.synthetic.anatomy import Study
from medflip.data.synthetic.canvas import Canvas, upsample
from medflip.data.synthetic.findings import add_findings_full, add_findings_lo
from medflip.data.synthetic.textures import APEX_REF, Banks, banks

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
        cx=a.cx,
        apex=a.apex,
        dome_r=dome_r,
        dome_l=dome_l,
        curv=a.dome_curv,
        half_width=a.half_width,
        ctr=float(ctr),
        heart_w=heart_w,
        heart_h=heart_h,
        heart_x=shift + a.heart_shift * heart_w,
        heart_y=dome_mid - 0.45 * heart_h,
        shift=shift,
        carina=a.apex + 0.19,
    )


def ramp(z: np.ndarray, k: float) -> np.ndarray:
    """Soft step from 0 (z < -0.5/k) to 1 (z > 0.5/k); overwrites nothing."""
    t = z * k
    t += 0.5
    return np.clip(t, 0.0, 1.0, out=t)


def _frame(b: Banks, study: Study) -> tuple[np.ndarray, np.ndarray]:
    """Lo-res coordinates in the patient's (tilted) frame: x from the midline, y down.
    y is a read-only view of the bank's precomputed frame."""
    a = study.anatomy
    xt, y = b.frame(a.tilt)
    return xt + (0.5 - a.cx), y


def _anatomy_lo(x, y, g: Geometry, study: Study, b: Banks, k: float):
    """Lo-res density, aerated-lung mask and inside-the-chest-wall mask, each [G, G],
    of the healthy chest. This runs for every image, so it is written as few whole-array
    numpy calls; profiles along one axis are computed untilted, on a row or a column
    ([1, G] or [G, 1]), which a tilt of a few degrees hardly changes."""
    a = study.anatomy
    row = b.u0[:1] + (0.5 - a.cx)  # [1, G] x, untilted
    col = b.v0[:, :1] + 0.5  # [G, 1] y, untilted
    tw = g.half_width
    ax = np.abs(x)
    # body: an elliptic cylinder (thickest at the midline) below a neck and shoulders
    s = np.minimum(col * 6.5, 1.0)
    half = s * (2.0 - s) * (a.body - 0.11) + 0.11  # [G, 1]
    q = x / half
    path = np.sqrt(np.maximum(1.0 - q * q, 0.0))  # tissue thickness, 0 outside the body
    # diaphragm: two domes, each highest mid-hemithorax, falling fastest laterally
    d = np.abs(row) - DOME_PEAK * tw
    dm = np.maximum(d, 0.0)
    dome_y = d * d * (0.6 * g.curv) + dm * dm * ((DOME_LATERAL - 0.6) * g.curv)
    dome_y += np.where(row < 0, g.dome_r, g.dome_l).astype(np.float32)  # [1, G]
    below = ramp(y - dome_y, k)
    # lungs: tapered apices widening toward the bases, cut by the domes and the mediastinum
    r = 1.0 - np.clip((col - g.apex) * (1 / (0.7 * (g.dome_r - g.apex))), 0.0, 1.0)
    thorax = ramp((tw - tw * r * r * r) - ax, 0.35 * k)  # inside the inner chest wall
    xm = np.abs(x - g.shift) if g.shift else ax
    lung = ramp(xm - a.mediastinum, k)
    lung *= thorax
    lung *= 1.0 - below
    mediastinum, thick = _mediastinum(x, y, xm, col, g, a, k)
    lung *= 1.0 - mediastinum
    density = below * (0.6 - a.soft)  # soft tissue, and liver / spleen below the domes
    density += a.soft
    density *= path
    density += (a.air - density) * lung
    density += (thick * 0.12 + 0.46 - density) * mediastinum
    return density, lung, thorax


def _mediastinum(x, y, xm, col, g: Geometry, a, k: float):
    """Heart (a sheared ellipse resting on the domes; shearing keeps every row's width, so
    the CTR is exact), upper mediastinum and aortic knob: mask and heart thickness."""
    dy = (col - g.heart_y) * (1 / g.heart_h)  # [G, 1]: untilted rows
    hx = x - (HEART_SHEAR * g.heart_h * dy + g.heart_x)
    hx *= 1 / g.heart_w
    t = (1.0 - dy * dy) - hx * hx
    mask = ramp(t, k * 0.5 * g.heart_w)
    thick = np.sqrt(np.maximum(t, 0.0))  # projected thickness: brighter centre
    width = (col - g.apex) * 0.012 + a.mediastinum  # [G, 1]: widening downward
    upper = ramp(width - xm, k)
    upper *= col < g.heart_y
    np.maximum(mask, upper, out=mask)
    # the knob is small: draw it on its own block of the grid only
    grid = x.shape[0]
    r0, c0 = int((g.carina - 0.07) * grid), int((g.cx + g.shift + 0.02) * grid)
    rows, cols = slice(max(r0, 0), max(r0 + grid // 8, 0)), slice(c0, c0 + grid // 8)
    kx = x[rows, cols] - (g.shift + a.mediastinum + 0.005)
    ky = y[rows, cols] - (g.carina - 0.035)
    knob = ramp(0.028**2 - kx * kx - ky * ky, k / 0.056)
    np.maximum(mask[rows, cols], knob, out=mask[rows, cols])
    return mask, thick


def _sprites(canvas: Canvas, g: Geometry, a, b: Banks) -> None:
    """Gastric bubble under the left dome; breast shadows over the bases."""
    size = b.size
    h, w = (n * b.f for n in b.bubble.shape[2:])
    top = int((g.dome_l + 0.06) * size) - h // 2
    canvas.add_sprite(b.bubble, top, int((g.cx + 0.45 * g.half_width) * size) - w // 2, 1.0)
    if a.breast > 0:
        h, w = (n * b.f for n in b.breasts.shape[2:])
        top = int((0.5 * (g.dome_r + g.dome_l) + 0.02) * size) + b.breast_low - h
        canvas.add_sprite(b.breasts, top, int(g.cx * size) - w // 2, a.breast)


def render(study: Study, image_size: int) -> np.ndarray:
    """The radiograph of `study`: float32 [image_size, image_size] in [0, 1]."""
    b = banks(image_size)
    a = study.anatomy
    g = geometry(study)
    k = b.grid / SOFT_EDGE
    x, y = _frame(b, study)
    density, lung, thorax = _anatomy_lo(x, y, g, study, b, k)
    extras = add_findings_lo(density, lung, thorax, x, y, g, study, b)
    oy, ox = (int(o * b.grid) for o in a.offsets[:2])
    density += b.mottle[oy : oy + b.grid, ox : ox + b.grid]
    canvas = Canvas(upsample(density, b.f))  # [f, f, G, G]: the full-resolution image
    # templates are drawn for a reference chest: shift them onto this one
    t = b.template(g.half_width, a.texture)
    py = min(max(int(round(b.pad + (APEX_REF - g.apex) * image_size)), 0), 2 * b.pad) // b.f
    px = min(max(int(round(b.pad + (0.5 - g.cx) * image_size)), 0), 2 * b.pad) // b.f
    crop = (slice(None), slice(None), slice(py, py + b.grid), slice(px, px + b.grid))
    canvas.p += b.bones[a.view][t][crop]
    vessels = b.vessels[t][crop]
    edema = study.findings.get("Edema")
    if edema is not None:  # edema blurs the vessel outlines
        blur = min(1.0, 0.4 + 0.8 * edema.severity)
        vessels = vessels * (1 - blur) + b.vessels_blur[t][crop] * blur
    canvas.p += vessels * lung  # the lo-res lung mask multiplies every phase
    _sprites(canvas, g, a, b)
    add_findings_full(canvas, g, study, b, extras)
    return _expose(canvas, a, b)


def _expose(canvas: Canvas, a, b: Banks) -> np.ndarray:
    """Film response 1 - exp(-gain * density), display gamma, quantum noise; in [0, 1]."""
    img = canvas.p
    img *= -a.gain
    e = np.exp(img, out=img)
    # x = s (1 - e) exposed and normalised (s = 1 / (1 - exp(-gain D_MAX))), then gamma as
    # Schlick's bias curve x / (x + c (1 - x)), which matches x**gamma at 0.5: together
    # (1 - e) / (p + q e), four cheap operations instead of a power
    s = 1.0 / (1.0 - math.exp(-a.gain * D_MAX))
    c = 2.0**a.gamma - 1.0
    p, q = (1.0 - c + c / s), (c - 1.0)
    den = e * q
    den += p
    np.subtract(1.0, e, out=img)
    img /= den
    g = b.grid
    ny, nx = int(a.offsets[2] * g), int(a.offsets[0] * g)
    # per-pixel quantum noise falls as pixels grow (sigma is for 128 px); portable AP
    # films are noisier
    sigma = a.noise * (1.3 if a.view == "AP" else 1.0) * min(b.size / 128, 1.5)
    img += b.noise[:, :, ny : ny + g, nx : nx + g] * sigma
    np.clip(img, 0.0, 1.0, out=img)
    return canvas.image()
