"""A labelled grid of synthetic studies, for a person to look at.

python -m medflip.data.synthetic --grid grid.png [--n 24] [--image-size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

from medflip.data.synthetic import SyntheticCXR


def _title(t: dict) -> str:
    short = {
        "Cardiomegaly": "CM",
        "Edema": "Ed",
        "Consolidation": "Co",
        "Atelectasis": "At",
        "Pleural Effusion": "PE",
    }
    parts = [
        f"{short[n]}{t['side'].get(n, '')[:1].upper()} {s:.2f}" for n, s in t["severity"].items()
    ]
    head = f"{t['view']} ctr {t['ctr']:.2f}" + (" +dev" if t["devices"] else "")
    return head + "\n" + (", ".join(parts) if parts else "normal")


def save_grid(path: str, n: int = 24, image_size: int = 128, seed: int = 0) -> None:
    """A labelled grid of the first n studies, for a person to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = SyntheticCXR(seed, n, image_size)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.6 * rows), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            item = data[j]
            ax.imshow(item["image"], cmap="gray", vmin=0, vmax=1)
            ax.set_title(_title(item["truth"]), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medflip.data.synthetic",
        description="Write a labelled grid of synthetic chest radiographs (truth findings, "
        "side initial and severity in each title: CM cardiomegaly, Ed edema, Co "
        "consolidation, At atelectasis, PE pleural effusion).",
    )
    parser.add_argument("--grid", required=True, help="output image path (e.g. grid.png)")
    parser.add_argument("--n", type=int, default=24, help="number of studies (default 24)")
    parser.add_argument("--image-size", type=int, default=128, help="pixels per side")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    save_grid(args.grid, args.n, args.image_size, args.seed)
    print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
