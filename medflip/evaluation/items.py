"""Per-item correctness of one evaluation, packed into a short text cell of the results.

The analysis bootstraps over evaluation items, paired across arms (every arm of a corpus
seed scores the same items in the same order), so each report keeps which test items the
model got right: one bit per item, base64 of `numpy.packbits`. 1000 items take 168
characters, well inside the results' text-cell limit; numpy only, so analysis/ reads it
without torch.
"""

from __future__ import annotations

import base64

import numpy as np

MAX_CHARS = 512  # the results' longest text cell (medflip.results.table.MAX_TEXT)


def pack(correct) -> str | None:
    """'<n>:<base64 bits>' of a boolean vector [N]; None past MAX_CHARS (~3000 items)."""
    bits = np.asarray(correct, dtype=bool).ravel()
    text = f"{len(bits)}:" + base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")
    return text if len(text) <= MAX_CHARS else None


def unpack(text: str) -> np.ndarray:
    """The boolean vector [N] that `pack` wrote."""
    n, _, data = text.partition(":")
    raw = np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    return np.unpackbits(raw)[: int(n)].astype(bool)
