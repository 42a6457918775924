"""How findings and devices change a synthetic radiograph's density, in place.

Lo-res (half size, smooth): pleural fluid under a meniscus, basal atelectatic bands,
patchy lobar consolidation, perihilar edema haze. Full-res (thin): air bronchograms,
Kerley B lines, lines and tubes. Severity in (0, 1] scales extent and density; mild
findings stay subtle on purpose.
"""

from __future__ import annotations

import numpy as np

from medflip.data.synthetic_anatomy import Finding, Study
from medflip.data.synthetic_textures import MOTTLE_DENSITY


def _sides(side: str) -> tuple[str, ...]:
    return ("right", "left") if side == "bilateral" else (side,)


def _sign(side: str) -> float:
    return -1.0 if side == "right" else 1.0


def _ramp(z, k):
    return np.minimum(np.maximum(z * k + 0.5, 0.0), 1.0)


def add_findings_lo(density, lung, thorax, x, y, g, study: Study, b) -> dict:
    """Lo-res findings, in place on density and the aerated-lung mask (`thorax`: inside the
    chest wall); returns what the full-res pass needs (the consolidation patch)."""
    k = float(b.grid)
    f = study.findings
    extras = {}
    if "Edema" in f:
        _edema(density, lung, x, y, g, f["Edema"], study)
    if "Consolidation" in f:
        extras["consolidation"] = _consolidation(density, lung, x, y, g, f["Consolidation"], b)
    if "Atelectasis" in f:
        _atelectasis(density, lung, x, y, g, f["Atelectasis"], study, k)
    if "Pleural Effusion" in f:
        _effusion(density, lung, thorax, x, y, g, f["Pleural Effusion"], study, k)
    return extras


def _effusion(density, lung, thorax, x, y, g, f: Finding, study, k) -> None:
    """Fluid fills the base under a meniscus (higher at the chest wall), hiding the dome and
    the heart border; a trace effusion only blunts the costophrenic angle."""
    a = study.anatomy
    tw = g.half_width
    for i, side in enumerate(_sides(f.side)):
        sev = f.severity * (1.0 if i == 0 else 0.6 + 0.4 * f.detail[0])
        xs = (x - g.shift) * _sign(side)  # toward this side's chest wall
        rel = np.minimum(np.maximum(xs * (1 / tw), 0.0), 1.1)
        h = 0.02 + 0.42 * sev  # fluid height at the chest wall, above the angle
        level = g.costophrenic(side) - h * (0.25 + 0.75 * rel**3)
        mask = _ramp(y - level, 0.6 * k) * thorax
        mask *= _ramp(xs - a.mediastinum, k) * _ramp(g.dome_y(x, g.dome(side)) + 0.06 - y, k)
        fluid = a.soft + 0.12 + 0.06 * sev
        density += mask * np.maximum(fluid - density, 0.0)
        lung *= 1 - mask


def _atelectasis(density, lung, x, y, g, f: Finding, study, k) -> None:
    """Plate-like band and hazy basal opacity above a raised dome (raised in `geometry`)."""
    tw = g.half_width
    u = f.detail[1]
    for side in _sides(f.side):
        sev = f.severity
        xs = (x - g.shift) * _sign(side)
        dome_y = g.dome_y(x, g.dome(side))
        band_y = dome_y - (0.035 + 0.03 * u) - 0.04 * (xs * (1 / tw) - 0.5) * (u - 0.5)
        th = 0.015 + 0.025 * sev
        band = _ramp(th - np.abs(y - band_y), k) * _ramp(xs - 0.1 * tw, k)
        band *= _ramp(0.9 * tw - xs, k)
        r2 = ((xs - 0.45 * tw) * (1 / (0.4 * tw))) ** 2
        r2 += ((y - dome_y + 0.02) * (1 / (0.05 + 0.07 * sev))) ** 2
        basal = np.maximum(1 - r2, 0.0)
        density += ((0.14 + 0.3 * sev) * band + (0.06 + 0.25 * sev) * basal) * lung


def _consolidation(density, lung, x, y, g, f: Finding, b) -> np.ndarray:
    """Patchy lobar opacity; returns the patch [G, G] for the air bronchograms."""
    tw = g.half_width
    sev = f.severity
    sign = _sign(f.side)
    if f.lobe == "upper":
        cx, cy = g.shift + sign * 0.5 * tw, g.apex + 0.15
    elif f.lobe == "middle":  # abuts the right heart border (silhouette sign)
        cx, cy = g.heart_x - g.heart_w - 0.06, g.heart_y - 0.02
    else:
        cx, cy = g.shift + sign * 0.55 * tw, g.dome(f.side) - 0.12
    rx, ry = 0.08 + 0.1 * sev, 0.07 + 0.08 * sev
    r2 = ((x - cx) * (1 / rx)) ** 2 + ((y - cy) * (1 / ry)) ** 2
    oy, ox = int(f.detail[2] * b.grid), int(f.detail[3] * b.grid)
    mottle = b.mottle[oy : oy + b.grid, ox : ox + b.grid]
    patch = np.maximum(1.2 - r2 + (0.45 / MOTTLE_DENSITY) * mottle, 0.0)
    patch = np.minimum(patch, 1.0) * lung
    density += (0.12 + 0.38 * sev) * patch
    return patch


def _edema(density, lung, x, y, g, f: Finding, study) -> None:
    """Bilateral perihilar ("bat-wing") haze over a diffuse rise in lung density."""
    sev = f.severity
    xm = np.abs(x - g.shift) - (study.anatomy.mediastinum + 0.05)
    rx, ry = 0.1 + 0.1 * sev, 0.1 + 0.08 * sev
    haze = np.exp(-((xm * (1 / rx)) ** 2) - ((y - g.carina - 0.07) * (1 / ry)) ** 2)
    density += ((0.05 + 0.3 * sev) * haze + 0.06 * sev) * lung


def add_findings_full(density, g, study: Study, b, extras: dict) -> None:
    """Thin structures at full resolution, in place."""
    f = study.findings
    size = b.size
    if "Edema" in f and f["Edema"].severity > 0.2:
        _kerley(density, g, f["Edema"], study, size)
    if "consolidation" in extras:
        _bronchograms(density, g, f["Consolidation"], extras["consolidation"], b)
    for name, param in study.devices.items():
        _DEVICES[name](density, g, study, param, size)


def _pixels(points, size: int, width: int = 1):
    """Rows and columns a polyline of (x, y) points covers (x from the image's left edge,
    fractions of the image), sampled every half pixel; `width` 2 adds the row below."""
    p = np.asarray(points, dtype=np.float64) * size
    seg = p[1:] - p[:-1]
    n = np.maximum((np.abs(seg).max(axis=1) * 2).astype(int), 1)  # samples per segment
    which = np.repeat(np.arange(len(seg)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / n[which]
    pts = p[which] + seg[which] * t[:, None]
    rows, cols = pts[:, 1].astype(int), pts[:, 0].astype(int)
    if width > 1:
        rows, cols = np.concatenate([rows, rows + 1]), np.concatenate([cols, cols])
    ok = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return rows[ok], cols[ok]


def _kerley(density, g, f: Finding, study, size) -> None:
    """Short horizontal septal lines at the lateral lung bases (one fancy-index add)."""
    tw, u = g.half_width, f.detail
    rows, cols = [], []
    for s, side in enumerate(("right", "left")):
        sign = _sign(side)
        top = g.costophrenic(side) - 0.03
        for j in range(int(2 + 7 * f.severity)):
            yj = top - 0.016 * j - 0.006 * u[(4 + j + s) % len(u)]
            length = 0.02 + 0.025 * u[(5 + 2 * j + s) % len(u)]
            c0 = int((g.cx + sign * (tw - 0.005)) * size)
            c1 = int((g.cx + sign * (tw - 0.005 - length)) * size)
            span = np.arange(min(c0, c1), max(c0, c1) + 1)
            cols.append(span)
            rows.append(np.full(len(span), int(yj * size)))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    ok = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    density[rows[ok], cols[ok]] += (0.06 + 0.08 * f.severity) * min(1.0, size / 128)


def _bronchograms(density, g, f: Finding, patch, b) -> None:
    """Dark branching air-filled bronchi inside the consolidation."""
    size, grid = b.size, b.grid
    ys, xs = np.nonzero(patch > 0.6)
    if len(ys) == 0:
        return
    y0, x0 = ys.mean() / grid, xs.mean() / grid
    u = f.detail
    seg = 0.012 + 0.008 * u[4]
    pts = []
    for i in range(2 + int(3 * f.severity)):
        angle = 2 * np.pi * (u[5] + i / 5.0) + 0.5 * (u[(6 + i) % len(u)] - 0.5)
        bend = 0.5 * (u[(7 + i) % len(u)] - 0.5)
        steps = angle + bend * np.arange(1, 7)  # a gently curving branch
        branch = np.stack([x0 + np.cumsum(np.cos(steps)) * seg,
                           y0 + np.cumsum(np.sin(steps)) * seg], axis=1)
        pts.append(_pixels(np.concatenate([[[x0, y0]], branch]), size))
    rows = np.concatenate([p[0] for p in pts])
    cols = np.concatenate([p[1] for p in pts])
    inside = patch[rows * grid // size, cols * grid // size]
    density[rows, cols] -= (0.05 + 0.15 * f.severity) * min(1.0, size / 128) * inside


def _ett(density, g, study, param, size) -> None:
    tip = g.carina - (2 + round(4 * param)) * 0.022  # ~2.2 % of the film per cm
    pts = np.array([[g.cx + 0.004, 0.0], [g.cx + g.shift, tip]])
    density[_pixels(pts, size, 2)] += 0.32


def _jugular(density, g, study, param, size) -> None:
    pts = np.array([[g.cx - 0.13, 0.0], [g.cx - 0.08, 0.09], [g.cx - 0.04, 0.16],
                    [g.cx - 0.035 + g.shift, g.carina + 0.02 + 0.03 * param]])
    density[_pixels(pts, size)] += 0.3


def _picc(density, g, study, param, size) -> None:
    t = np.linspace(0, 1, 12)[:, None]
    p0 = np.array([g.cx - 0.5, g.apex + 0.12])
    p1 = np.array([g.cx - 0.2, g.apex - 0.01])
    p2 = np.array([g.cx - 0.035 + g.shift, g.carina + 0.03 + 0.03 * param])
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    density[_pixels(pts, size)] += 0.3


def _ng(density, g, study, param, size) -> None:
    stomach = g.dome_l + 0.07 + 0.03 * param
    pts = np.array([[g.cx + 0.01, 0.0], [g.cx + 0.015 + g.shift, g.carina + 0.1],
                    [g.cx + 0.03, g.dome_l + 0.02], [g.cx + 0.12, stomach],
                    [g.cx + 0.17, stomach - 0.01]])
    density[_pixels(pts, size, 2)] += 0.28


def _pacemaker(density, g, study, param, size) -> None:
    x0, y0 = g.cx + 0.22 + 0.04 * param, g.apex + 0.07
    r0, r1 = int((y0 - 0.025) * size), int((y0 + 0.025) * size) + 1
    c0, c1 = int((x0 - 0.035) * size), int((x0 + 0.035) * size) + 1
    density[max(r0, 0) : r1, max(c0, 0) : c1] += 0.7  # the generator: metal, white
    for end in ((g.cx - 0.02 + g.shift, g.heart_y - 0.6 * g.heart_h),
                (g.cx + g.heart_x + 0.3 * g.heart_w, g.heart_y + 0.4 * g.heart_h)):
        pts = np.array([[x0, y0], [g.cx - 0.02, g.apex + 0.1], [g.cx - 0.03, g.carina + 0.05],
                        list(end)])
        density[_pixels(pts, size)] += 0.35


_DEVICES = {"ett": _ett, "jugular": _jugular, "picc": _picc, "ng": _ng,
            "pacemaker": _pacemaker}
