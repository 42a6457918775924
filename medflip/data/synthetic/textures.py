"""Precomputed pieces of synthetic radiographs, built once per image size.

Drawing ribs and vessel trees per image would cost milliseconds; instead each image takes a
shifted crop (a free numpy view) of one of a few templates drawn here, picked by the
patient's thoracic width and the view. Noise comes from crops of one noise bank.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from medflip.data.synthetic.anatomy import TILT_MAX
from medflip.data.synthetic.canvas import factor, to_phases

APEX_REF = 0.13  # templates are drawn for lungs whose apices sit here ...
WIDTHS = (0.345, 0.365, 0.385, 0.405)  # ... and for these thoracic half-widths
VARIANTS = 4  # rib/vessel variants per width
RIB_DENSITY, VESSEL_DENSITY, MOTTLE_DENSITY = 0.08, 0.14, 0.02
KERLEY_LINES, KERLEY_STEP = 9, 0.016
TILTS = 41  # precomputed rotated frames (0.125 degree steps)
_BANK_SEED = 20240517  # templates are the same in every process


@dataclass(frozen=True)
class Banks:
    """Everything `render` precomputes for one image size: S px, lo-res grid G = S / f px.
    Full-resolution arrays are stored as polyphase components (see canvas.py)."""

    size: int
    grid: int
    f: int
    pad: int  # template margin, pixels: crops shift by up to this much
    u0: np.ndarray  # [G, G] lo-res x - 0.5 (fractions of the image)
    v0: np.ndarray  # [G, G] lo-res y - 0.5
    frames: np.ndarray  # [TILTS, 2, G, G] read-only: (x - 0.5, y) rotated by each tilt
    # Templates [T, f, f, (S + 2 pad) / f, (S + 2 pad) / f], T = len(WIDTHS) * VARIANTS:
    bones: dict  # view -> ribs, clavicles, spine, hila and the (negative) tracheal air
    vessels: np.ndarray  # lung markings, sharp
    vessels_blur: np.ndarray  # the markings blurred (edema)
    noise: np.ndarray  # [f, f, 2 G, 2 G] standard normal
    mottle: np.ndarray  # [2 G, 2 G] smooth noise, std MOTTLE_DENSITY
    bubble: np.ndarray  # phased sprite: gastric air under the left dome (negative density)
    breasts: np.ndarray  # phased sprite: both breast shadows at unit density, whose
    breast_low: int  # ... lower edges are this many pixels below the sprite's centre row
    kerley: tuple  # 4 variants of (rows, cols): septal lines anchored at column 0 (the
    # patient's right chest wall), stacked upward from row 0 (negative rows)

    def frame(self, tilt: float) -> tuple[np.ndarray, np.ndarray]:
        """Lo-res (x from the image centre, y from the top) in a frame rotated by `tilt`
        (radians, snapped to one of TILTS steps across +-TILT_MAX); read-only arrays."""
        step = 2 * TILT_MAX / (TILTS - 1)
        i = min(max(int(round((tilt + TILT_MAX) / step)), 0), TILTS - 1)
        return self.frames[i, 0], self.frames[i, 1]

    def template(self, half_width: float, texture: float) -> int:
        """Index of the template for this thoracic half-width and variant draw in [0, 1)."""
        w = min(range(len(WIDTHS)), key=lambda i: abs(half_width - WIDTHS[i]))
        return w * VARIANTS + min(int(texture * VARIANTS), VARIANTS - 1)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur by shifted sums (build time only; zero beyond the edges).
    No matrix products: a multithreaded BLAS on a busy machine costs seconds here."""
    radius = max(1, int(3 * sigma + 0.5))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-3)) ** 2)
    taps /= taps.sum()
    out = img.astype(np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        n = out.shape[axis]
        out = sum(w * padded.take(np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return out.astype(np.float32)


def _ribs(shape, size, pad, half_width, rng) -> np.ndarray:
    """Posterior ribs (arching down to the chest wall) and fainter, steeper anterior ribs."""
    r, c = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    x = (c - pad) / size - 0.5  # from the midline
    y = (r - pad) / size
    ax = np.abs(x) / half_width  # 1 = inner chest wall
    out = np.zeros(shape, np.float32)
    spacing = rng.uniform(0.06, 0.07)
    drop = rng.uniform(0.11, 0.16)  # how far a posterior rib falls at the chest wall
    thick = rng.uniform(0.015, 0.019)
    for k in range(13):
        y0 = APEX_REF - 0.05 + k * spacing + rng.normal(0, 0.003)
        centre = y0 - 0.03 * ax + drop * ax**3
        extent = np.clip((ax - 0.07) * 20, 0, 1) * np.clip((1.07 - ax) * 20, 0, 1)
        out += extent * _bone((y - centre) / (thick * (0.8 + 0.4 * ax)))
        centre = y0 + 0.07 + 0.2 * np.maximum(1.0 - ax, 0) ** 1.2  # anterior rib
        extent = np.clip((ax - 0.3) * 8, 0, 1) * np.clip((1.04 - ax) * 20, 0, 1)
        out += 0.5 * extent * _bone((y - centre) / (0.75 * thick))
    return out * np.clip((0.86 - y) * 12, 0, 1)  # ribs fade over the abdomen


def _midline(shape, size, pad, view: str) -> np.ndarray:
    """Spine, tracheal air and main bronchi, hila and clavicles (PA: lower, AP: higher)."""
    r, c = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    x = (c - pad) / size - 0.5
    y = (r - pad) / size
    ax = np.abs(x)
    soft = 2.0 * size / 128  # edge softness, in units of 1/size
    step = lambda z: np.clip(z * size / soft + 0.5, 0, 1)  # noqa: E731
    carina = APEX_REF + 0.19
    disc = 0.75 + 0.25 * np.cos(2 * np.pi * y / 0.036) ** 2  # vertebral bodies and discs
    out = 0.06 * step(0.03 - ax) * disc
    out -= 0.16 * step(0.015 - ax) * step(carina - y)
    along = (y - carina) * 0.82 + ax * 0.57  # main bronchi, ~35 degrees off vertical
    across = np.abs(ax * 0.82 - (y - carina) * 0.57)
    out -= 0.1 * step(0.011 - across) * step(along) * step(0.05 - along)
    hx, hy = (ax - 0.1) / 0.035, (y - APEX_REF - 0.245) / 0.08
    out += 0.09 * np.maximum(1 - hx * hx - hy * hy, 0) ** 1.5
    k = ax - 0.17
    y_clav = 0.6 * k * k - 0.3 * ax + APEX_REF + (0.022 if view == "AP" else 0.062)
    out += 0.15 * _bone((y - y_clav) / 0.013) * step(0.165 - np.abs(k))
    return out.astype(np.float32)


def _sprites(size: int, f: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The gastric bubble and the breast shadows, phased, to add at an offset."""
    h, w = 2 * ((int(0.04 * size) + 1) // 2 * 2), 2 * ((int(0.07 * size) + 1) // 2 * 2)
    r, c = np.mgrid[0:h, 0:w] / size
    r, c = r - 0.5 * h / size, c - 0.5 * w / size
    bubble = -0.15 * np.clip((1 - (c / 0.06) ** 2 - (r / 0.033) ** 2) * 4, 0, 1)
    low = int(0.07 * size) // 2 * 2
    h, w = int(0.2 * size) // 2 * 2 + low, int(0.55 * size) // 2 * 4
    r, c = np.mgrid[0:h, 0:w] / size
    r, c = r - (h - low) / size, c - 0.5 * w / size
    bx = (np.abs(c) - 0.3) / 0.19
    by = np.maximum(-r, 3 * r) / 0.2  # fading upward; a sharp, curved fold below
    breasts = np.clip(1 - bx * bx - by * by, 0, 1) ** 0.5
    return to_phases(bubble, f), to_phases(breasts, f), low


def _kerley(size: int, rng) -> tuple:
    """Kerley B lines as pixel offsets: KERLEY_LINES short horizontal lines, one every
    KERLEY_STEP of the image height upward from row 0; 4 variants of lengths."""
    step = KERLEY_STEP * size
    out = []
    for _ in range(4):
        rows, cols = [], []
        for j in range(KERLEY_LINES):
            n = max(1, int(rng.uniform(0.02, 0.045) * size))
            rows.append(np.full(n, -int(j * step + rng.uniform(0, 0.4) * step)))
            cols.append(np.arange(n))
        out.append((np.concatenate(rows), np.concatenate(cols)))
    return tuple(out)


def _bone(d: np.ndarray) -> np.ndarray:
    """Projected thickness of a hollow cylinder: bright cortex, paler marrow."""
    outer = np.sqrt(np.maximum(1 - d**2, 0))
    inner = np.sqrt(np.maximum(0.55 - d**2, 0))
    return (outer - 0.8 * inner).astype(np.float32)


def _vessel_tree(size: int, rng) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Branching vessel trees from both hila, tapering toward the periphery, as sampled
    points (x in units of the thoracic half-width, y in image fractions, vessel width)."""
    hilum_y = APEX_REF + 0.25
    out = []
    for sign in (-1.0, 1.0):
        stack = []
        for angle in np.linspace(-2.0, 2.1, 6) + rng.normal(0, 0.15, 6):
            # angle 0 points laterally; negative points up, positive down
            stack.append((sign * (0.2 + 0.05 * rng.random()), hilum_y, angle, 0.1, 1.0))
        while stack:
            x0, y0, ang, length, width = stack.pop()
            n = max(4, int(length * size * 3))
            angles = ang + rng.normal(0, 0.3) * np.arange(n) / (n - 1)
            xs = x0 + sign * np.cumsum(np.cos(angles)) * (length / n / 0.37)
            ys = y0 + np.cumsum(np.sin(angles)) * (length / n)
            out.append((xs, ys, width))
            if width > 0.2:
                for turn in (-1, 1):
                    spread = turn * rng.uniform(0.25, 0.55)
                    stack.append((xs[-1], ys[-1], angles[-1] + spread, length * 0.78, width * 0.7))
    return out


def _vessels(tree, shape, size, pad, half_width, blur: float) -> tuple[np.ndarray, np.ndarray]:
    """A tree drawn for one thoracic half-width: the sharp and the blurred (edematous)
    markings, each scaled to about [0, 1]."""
    levels = []  # thick, medium, thin vessels: blurred by different amounts
    for lo, hi in ((0.6, 9.0), (0.35, 0.6), (0.0, 0.35)):
        parts = [(xs, ys, w) for xs, ys, w in tree if lo < w <= hi]
        xs = np.concatenate([p[0] for p in parts])
        ys = np.concatenate([p[1] for p in parts])
        ws = np.concatenate([np.full(len(p[0]), p[2] / 3) for p in parts])
        inside = (np.abs(xs) < 0.92) & (ys > APEX_REF + 0.03)
        rows = np.clip((ys * size + pad).astype(int), 0, shape[0] - 1)
        cols = np.clip(((xs * half_width + 0.5) * size + pad).astype(int), 0, shape[1] - 1)
        level = np.zeros(shape, np.float32)
        np.add.at(level, (rows[inside], cols[inside]), ws[inside])
        levels.append(level)
    px = size / 128  # blur widths below are in pixels at 128 px
    sigmas = (1.4, 0.9, 0.6)
    sharp = sum(_blur(lv, s * px) for lv, s in zip(levels, sigmas, strict=True))
    soft = sum(_blur(lv, (s + blur) * px) for lv, s in zip(levels, sigmas, strict=True))
    norm = float(np.percentile(sharp, 99.7)) or 1.0
    return np.minimum(sharp / norm, 1.5), np.minimum(soft / norm, 1.5)


@functools.lru_cache(maxsize=8)
def banks(size: int) -> Banks:
    """The banks for one image size (cached per process; deterministic)."""
    if size < 16:
        raise ValueError(f"image_size must be >= 16 pixels, got {size}")
    f = factor(size)
    grid = size // f
    pad = max(4, size // 8) // f * f
    shape = (size + 2 * pad, size + 2 * pad)
    rng = np.random.default_rng(_BANK_SEED)
    trees = [_vessel_tree(size, rng) for _ in range(VARIANTS)]
    ribs, vessels, blurred = [], [], []
    for half_width in WIDTHS:
        for tree in trees:
            # stored pre-scaled by their density: one add per image, not two
            ribs.append(
                RIB_DENSITY * _blur(_ribs(shape, size, pad, half_width, rng), 0.35 * size / 128)
            )
            sharp, soft = _vessels(tree, shape, size, pad, half_width, blur=1.8)
            vessels.append(VESSEL_DENSITY * sharp)
            blurred.append(VESSEL_DENSITY * soft)
    ribs = np.stack(ribs)
    bones = {v: to_phases(ribs + _midline(shape, size, pad, v), f) for v in ("PA", "AP")}
    bubble, breasts, breast_low = _sprites(size, f)
    c = (np.arange(grid, dtype=np.float32) + 0.5) / grid - 0.5
    u0, v0 = np.broadcast_to(c[None, :], (grid, grid)), np.broadcast_to(c[:, None], (grid, grid))
    frames = []
    for tilt in np.linspace(-TILT_MAX, TILT_MAX, TILTS):
        cos, sin = np.cos(tilt), np.sin(tilt)
        frames.append([u0 * cos + v0 * sin, v0 * cos - u0 * sin + 0.5])
    frames = np.asarray(frames, dtype=np.float32)
    frames.flags.writeable = False
    mottle = _blur(rng.standard_normal((2 * grid, 2 * grid)).astype(np.float32), 1.5 * 2 / f)
    mottle *= MOTTLE_DENSITY / mottle.std()
    return Banks(
        size=size,
        grid=grid,
        f=f,
        pad=pad,
        u0=u0.copy(),
        v0=v0.copy(),
        frames=frames,
        bones=bones,
        vessels=to_phases(np.stack(vessels), f),
        vessels_blur=to_phases(np.stack(blurred), f),
        noise=rng.standard_normal((f, f, 2 * grid, 2 * grid), dtype=np.float32),
        mottle=mottle.astype(np.float32),
        bubble=bubble,
        breasts=breasts,
        breast_low=breast_low,
        kerley=_kerley(size, rng),
    )
