"""How findings and devices change a synthetic radiograph's density, in place.

Lo-res (half size, smooth): pleural fluid under a meniscus, basal atelectatic bands,
patchy lobar consolidation, perihilar edema haze. Full-res (thin): air bronchograms,
Kerley B lines, lines and tubes. Severity in (0, 1] scales extent and density; mild
findings stay subtle on purpose.
"""

from __future__ import annotations

import numpy as np

from medflip.data.synthetic.anatomy import Finding, Study
from medflip.data.synthetic.textures import KERLEY_STEP, MOTTLE_DENSITY


def _sides(side: str) -> tuple[str, ...]:
    return ("right", "left") if side == "bilateral" else (side,)


def _sign(side: str) -> float:
    return -1.0 if side == "right" else 1.0


def _ramp(z, k):
    t = z * k
    t += 0.5
    return np.clip(t, 0.0, 1.0, out=t)


def _block(g, side: str, top: float, bottom: float, grid: int) -> tuple[slice, slice]:
    """Lo-res rows [top, bottom) (fractions) on one side of the midline: findings are
    drawn on views of this block only (the tilt moves the midline by a pixel at most)."""
    mid = int(round((g.cx + g.shift) * grid))
    cols = slice(0, mid) if side == "right" else slice(mid, grid)
    return slice(max(int(top * grid), 0), max(min(int(bottom * grid) + 1, grid), 0)), cols


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
        _atelectasis(density, lung, x, y, g, f["Atelectasis"], k)
    if "Pleural Effusion" in f:
        _effusion(density, lung, thorax, x, y, g, f["Pleural Effusion"], study, k)
    return extras


def _effusion(density, lung, thorax, x, y, g, f: Finding, study, k) -> None:
    """Fluid fills the base under a meniscus (higher at the chest wall), hiding the dome and
    the heart border; a trace effusion only blunts the costophrenic angle."""
    tw = g.half_width
    for i, side in enumerate(_sides(f.side)):
        sev = f.severity * (1.0 if i == 0 else 0.6 + 0.4 * f.detail[0])
        h = 0.02 + 0.48 * sev  # fluid height at the chest wall, above the angle
        cp = g.costophrenic(side)
        rows, cols = _block(g, side, cp - h - 0.05, cp + 0.05, density.shape[0])
        xs, ys = x[rows, cols], y[rows, cols]
        rel = np.clip(np.abs(xs - g.shift) * (1 / tw), 0.0, 1.1)
        level = rel * rel * rel * (-0.75 * h) + (cp - 0.25 * h)
        mask = _ramp(ys - level, 0.6 * k) * thorax[rows, cols]
        mask *= _ramp(g.dome_y(xs, g.dome(side)) + 0.015 - ys, k)  # pleural space only
        d = density[rows, cols]
        fluid = study.anatomy.soft + 0.12 + 0.06 * sev
        d += mask * np.maximum(fluid - d, 0.0)  # views: writes through to density
        lung[rows, cols] *= 1.0 - mask


def _atelectasis(density, lung, x, y, g, f: Finding, k) -> None:
    """Plate-like band and hazy basal opacity above a raised dome (raised in `geometry`)."""
    tw = g.half_width
    u = f.detail[1]
    sev = f.severity
    for side in _sides(f.side):
        dome = g.dome(side)
        rows, cols = _block(g, side, dome - 0.14, g.costophrenic(side), density.shape[0])
        xs, ys = x[rows, cols], y[rows, cols]
        xm = np.abs(xs - g.shift)
        dome_y = g.dome_y(xs, dome)
        band = ys - dome_y
        band += xm * (0.04 / tw * (u - 0.5)) + (0.035 + 0.03 * u - 0.02 * (u - 0.5))
        band = _ramp((0.015 + 0.025 * sev) - np.abs(band), k)
        bx = (xm - 0.45 * tw) * (1 / (0.4 * tw))
        by = (ys - dome_y + 0.02) * (1 / (0.05 + 0.07 * sev))
        basal = np.maximum(1.0 - bx * bx - by * by, 0.0)
        opacity = band * (0.14 + 0.3 * sev) + basal * (0.06 + 0.25 * sev)
        density[rows, cols] += opacity * lung[rows, cols]


def _consolidation(density, lung, x, y, g, f: Finding, b) -> tuple:
    """Patchy lobar opacity; returns (patch [G, G], centre x, centre y) for the air
    bronchograms."""
    tw = g.half_width
    sev = f.severity
    sign = _sign(f.side)
    if f.lobe == "upper":
        cx, cy = g.shift + sign * 0.5 * tw, g.apex + 0.15
    elif f.lobe == "middle":  # abuts the right heart border (silhouette sign)
        cx, cy = g.heart_x - g.heart_w - 0.06, g.heart_y - 0.02
    else:
        cx, cy = g.shift + sign * 0.55 * tw, g.dome(f.side) - 0.12
    rx, ry = 0.09 + 0.11 * sev, 0.075 + 0.09 * sev
    px, py = (x - cx) * (1 / rx), (y - cy) * (1 / ry)
    oy, ox = int(f.detail[2] * b.grid), int(f.detail[3] * b.grid)
    patch = b.mottle[oy : oy + b.grid, ox : ox + b.grid] * (0.45 / MOTTLE_DENSITY)
    patch += 1.2 - px * px - py * py
    patch = np.clip(patch, 0.0, 1.0, out=patch)
    patch *= lung
    density += patch * (0.12 + 0.38 * sev)
    return patch, g.cx + cx, cy


def _edema(density, lung, x, y, g, f: Finding, study) -> None:
    """Bilateral perihilar ("bat-wing") haze over a diffuse rise in lung density."""
    sev = f.severity
    xm = np.abs(x - g.shift) - (study.anatomy.mediastinum + 0.05)
    xm *= 1 / (0.1 + 0.1 * sev)
    ym = (y - g.carina - 0.07) * (1 / (0.1 + 0.08 * sev))
    haze = np.exp(-(xm * xm) - ym * ym)
    density += (haze * (0.05 + 0.3 * sev) + 0.06 * sev) * lung


def add_findings_full(canvas, g, study: Study, b, extras: dict) -> None:
    """Thin structures at full resolution, on the canvas."""
    f = study.findings
    if "Edema" in f and f["Edema"].severity > 0.2:
        _kerley(canvas, g, f["Edema"], b)
    if "consolidation" in extras:
        _bronchograms(canvas, f["Consolidation"], *extras["consolidation"], b)
    for name, param in study.devices.items():
        _DEVICES[name](canvas, g, param)


def _pixels(points, size: int, width: int = 1):
    """Rows and columns a polyline of (x, y) points covers (x from the image's left edge,
    fractions of the image), sampled every half pixel; `width` 2 adds the row below."""
    p = np.asarray(points, dtype=np.float64) * size
    step = np.abs(p[1:] - p[:-1]).max(axis=1)
    arc = np.concatenate(([0.0], np.cumsum(step)))
    s = np.arange(0.0, arc[-1] + 0.5, 0.5)
    rows = np.interp(s, arc, p[:, 1]).astype(np.intp)
    cols = np.interp(s, arc, p[:, 0]).astype(np.intp)
    if width > 1:
        rows, cols = np.concatenate([rows, rows + 1]), np.concatenate([cols, cols])
    return rows, cols


def _kerley(canvas, g, f: Finding, b) -> None:
    """Short horizontal septal lines at the lateral lung bases, more with severity."""
    size = b.size
    rows, cols = b.kerley[min(int(f.detail[4] * 4), 3)]
    keep = rows > -(2 + 7 * f.severity) * KERLEY_STEP * size  # the lowest lines
    rows, cols = rows[keep], cols[keep]
    scale = (0.06 + 0.08 * f.severity) * min(1.0, size / 128)
    bottom_r = int((g.costophrenic("right") - 0.03) * size)
    bottom_l = int((g.costophrenic("left") - 0.03) * size)
    wall_r = int((g.cx - g.half_width + 0.005) * size)
    wall_l = int((g.cx + g.half_width - 0.005) * size)
    canvas.add_points(
        np.concatenate([rows + bottom_r, rows + bottom_l]),
        np.concatenate([cols + wall_r, wall_l - cols]),
        scale,
    )


def _bronchograms(canvas, f: Finding, patch, x0: float, y0: float, b) -> None:
    """Dark branching air-filled bronchi inside the consolidation (all branches at once)."""
    size, grid = b.size, b.grid
    u = np.asarray(f.detail)
    n = 2 + int(3 * f.severity)
    i = np.arange(n)
    angle = 2 * np.pi * (u[5] + i / 5.0) + 0.5 * (u[(6 + i) % len(u)] - 0.5)
    bend = 0.5 * (u[(7 + i) % len(u)] - 0.5)
    length = (0.07 + 0.05 * u[4]) * size  # pixels
    t = np.arange(0.0, length, 0.5)[None, :]  # half-pixel steps along each branch
    turn = angle[:, None] + bend[:, None] * t * (6 / length)
    cols = (x0 * size + np.cumsum(np.cos(turn), axis=1) * 0.5).astype(np.intp).ravel()
    rows = (y0 * size + np.cumsum(np.sin(turn), axis=1) * 0.5).astype(np.intp).ravel()
    ok = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    rows, cols = rows[ok], cols[ok]
    inside = patch[rows * grid // size, cols * grid // size]
    canvas.add_points(rows, cols, -(0.05 + 0.15 * f.severity) * min(1.0, size / 128) * inside)


def _ett(canvas, g, param) -> None:
    """Endotracheal tube: a straight radio-opaque stripe down the trachea."""
    size = canvas.size
    tip = g.carina - (2 + round(4 * param)) * 0.022  # ~2.2 % of the film per cm
    col = int((g.cx + 0.5 * g.shift) * size)
    canvas.add_rect(0, int(tip * size), col, col + max(1, size // 64), 0.32)


def _jugular(canvas, g, param) -> None:
    pts = np.array(
        [
            [g.cx - 0.13, 0.0],
            [g.cx - 0.08, 0.09],
            [g.cx - 0.04, 0.16],
            [g.cx - 0.035 + g.shift, g.carina + 0.02 + 0.03 * param],
        ]
    )
    canvas.add_points(*_pixels(pts, canvas.size), 0.3)


def _picc(canvas, g, param) -> None:
    t = np.linspace(0, 1, 12)[:, None]
    p0 = np.array([g.cx - 0.5, g.apex + 0.12])
    p1 = np.array([g.cx - 0.2, g.apex - 0.01])
    p2 = np.array([g.cx - 0.035 + g.shift, g.carina + 0.03 + 0.03 * param])
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    canvas.add_points(*_pixels(pts, canvas.size), 0.3)


def _ng(canvas, g, param) -> None:
    stomach = g.dome_l + 0.07 + 0.03 * param
    pts = np.array(
        [
            [g.cx + 0.01, 0.0],
            [g.cx + 0.015 + g.shift, g.carina + 0.1],
            [g.cx + 0.03, g.dome_l + 0.02],
            [g.cx + 0.12, stomach],
            [g.cx + 0.17, stomach - 0.01],
        ]
    )
    canvas.add_points(*_pixels(pts, canvas.size, 2), 0.28)


def _pacemaker(canvas, g, param) -> None:
    size = canvas.size
    x0, y0 = g.cx + 0.22 + 0.04 * param, g.apex + 0.07
    canvas.add_rect(
        int((y0 - 0.025) * size),
        int((y0 + 0.025) * size) + 1,
        int((x0 - 0.035) * size),
        int((x0 + 0.035) * size) + 1,
        0.7,
    )  # metal
    leads = []
    for end in (
        (g.cx - 0.02 + g.shift, g.heart_y - 0.6 * g.heart_h),
        (g.cx + g.heart_x + 0.3 * g.heart_w, g.heart_y + 0.4 * g.heart_h),
    ):
        pts = np.array(
            [[x0, y0], [g.cx - 0.02, g.apex + 0.1], [g.cx - 0.03, g.carina + 0.05], list(end)]
        )
        leads.append(_pixels(pts, size))
    canvas.add_points(
        np.concatenate([r for r, _ in leads]), np.concatenate([c for _, c in leads]), 0.35
    )


_DEVICES = {"ett": _ett, "jugular": _jugular, "picc": _picc, "ng": _ng, "pacemaker": _pacemaker}
