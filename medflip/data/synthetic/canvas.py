"""A full-resolution image held as its polyphase components, for cheap composition.

Smooth anatomy is drawn on a lo-res grid of G = S / f pixels per side (f = 2; f = 1 for odd
sizes). Holding the full image as its f x f phases [f, f, G, G] (pixel (r, c) at
[r % f, c % f, r // f, c // f]) lets a lo-res mask multiply a full-resolution texture
without upsampling the mask, makes bilinear upsampling a few shifted sums instead of a
matrix product, and keeps every per-image numpy call on contiguous memory. Templates and
sprites are stored in the same layout; their offsets snap to multiples of f pixels.
"""

from __future__ import annotations

import numpy as np


def factor(size: int) -> int:
    """Full-resolution pixels per lo-res pixel."""
    return 2 if size % 2 == 0 else 1


def to_phases(img: np.ndarray, f: int) -> np.ndarray:
    """[..., H, W] (H, W multiples of f) -> [..., f, f, H / f, W / f], contiguous."""
    *lead, h, w = img.shape
    out = img.reshape(*lead, h // f, f, w // f, f)
    n = len(lead)
    axes = (*range(n), n + 1, n + 3, n, n + 2)
    return np.ascontiguousarray(out.transpose(axes)).astype(np.float32)


def from_phases(p: np.ndarray) -> np.ndarray:
    """[f, f, G, G] -> [f G, f G]. One strided copy per phase: a single transposing copy
    is four times slower (its innermost axis has length f)."""
    f, _, g, _ = p.shape
    out = np.empty((f * g, f * g), np.float32)
    for i in range(f):
        for j in range(f):
            out[i::f, j::f] = p[i, j]
    return out


def upsample(lo: np.ndarray, f: int) -> np.ndarray:
    """Bilinear upsampling of [G, G] by f into phases [f, f, G, G] (pixel centres aligned,
    edges clamped; the same numbers as a bilinear resize)."""
    if f == 1:
        return lo[None, None].copy()
    g = lo.shape[0]
    clamp = np.concatenate(([0], np.arange(g), [g - 1]))
    out = np.empty((2, 2, g, g), np.float32)
    main = lo * 0.75
    padded = lo[clamp] * 0.25  # [G + 2, G]
    for i, v in enumerate((main + padded[:-2], main + padded[2:])):  # rows 2i, 2i + 1
        vm = v * 0.75
        vp = v[:, clamp] * 0.25
        np.add(vm, vp[:, :-2], out=out[i, 0])
        np.add(vm, vp[:, 2:], out=out[i, 1])
    return out


class Canvas:
    """The image being composed, as phases [f, f, G, G] (density units until exposed)."""

    def __init__(self, phases: np.ndarray):
        self.p = phases
        self.f = phases.shape[0]
        self.grid = phases.shape[2]
        self.size = self.f * self.grid

    def add_points(self, rows: np.ndarray, cols: np.ndarray, value) -> None:
        """Add `value` (scalar or per point) at full-resolution pixels; out-of-image points
        are dropped. Repeated points add once (fancy-index assignment)."""
        ok = (rows >= 0) & (rows < self.size) & (cols >= 0) & (cols < self.size)
        if not ok.all():
            rows, cols = rows[ok], cols[ok]
            value = value if np.isscalar(value) else value[ok]
        f, g = self.f, self.grid
        flat = ((rows % f) * f + cols % f) * (g * g) + (rows // f) * g + cols // f
        self.p.reshape(-1)[flat] += value

    def add_rect(self, top: int, bottom: int, left: int, right: int, value: float) -> None:
        """Add `value` over rows [top, bottom) and columns [left, right)."""
        f = self.f
        top, left = max(top, 0), max(left, 0)
        for i in range(f):
            r0, r1 = (top - i + f - 1) // f, (bottom - i + f - 1) // f
            for j in range(f):
                c0, c1 = (left - j + f - 1) // f, (right - j + f - 1) // f
                self.p[i, j, r0:r1, c0:c1] += value

    def add_sprite(self, sprite: np.ndarray, top: int, left: int, scale: float) -> None:
        """Add a phased sprite [f, f, h, w] * scale with its corner at (top, left) (snapped
        down to a multiple of f), clipped to the image."""
        f, g = self.f, self.grid
        t, l0 = top // f, left // f
        h, w = sprite.shape[2:]
        r0, c0 = max(t, 0), max(l0, 0)
        r1, c1 = min(t + h, g), min(l0 + w, g)
        if r0 < r1 and c0 < c1:
            self.p[:, :, r0:r1, c0:c1] += sprite[:, :, r0 - t : r1 - t, c0 - l0 : c1 - l0] * scale

    def image(self) -> np.ndarray:
        """The composed image [S, S]."""
        return from_phases(self.p)
