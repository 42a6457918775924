"""Model FLOPs of one training pair: both towers, counted from the config (no model built).

The usual accounting for model FLOP utilisation (MFU, PaLM appendix B): multiply-adds of
the matmuls and convolutions that the forward pass runs, x2 FLOPs each, and a training step
costs 3x its forward (the backward computes gradients for activations and weights). Norms,
softmaxes, GELUs and the losses are left out (a few % at these widths); the pair SVD term
is counted on its own (`svd_pair_flops`) since it is quadratic in the batch.

Image tower (timm ViT, FLIP): patch embedding over all L patches, then `depth` blocks over
the 1 + K kept tokens (cls + visible): per token 12 W^2 (qkv 3, proj 1, MLP 2 x 4), per
image 2 (1 + K)^2 W for attention scores and values; projection W x E of the pooled token.
Text tower (BERT): per token and layer 4 H^2 + 2 H I, per text 2 T^2 H for attention;
projection H x E. T = the encoded length (the batch's longest text).

`python -m medflip.models.flops --amdahl` prints the README's Amdahl table: what 75 %
image masking buys a whole step, and the text tower's share of the masked step, per text
length, for the paper model and the demo model.

`step_flops` is a training step's count as the run records it (`train_flops`, the FLOPs
budget's clock): each image at the step's kept patches and size, each text over its own
kept tokens (padding and length buckets are how an implementation runs, not model work),
x3 for forward + backward. The MAE decoder, the MLM head and the SVD term are not in it.
"""

from __future__ import annotations

from medflip.config import TEXT_SIZES, Config
from medflip.models.masking import num_kept

MLP_RATIO = 4  # timm's ViT default (medflip.models.image.build_vit keeps it)


def image_macs(cfg: Config, ratio: float, image_size: int = 0) -> int:
    """Multiply-adds of one image's forward pass at mask ratio `ratio` (at `image_size`
    pixels a side; 0 = data.image_size)."""
    m = cfg.model
    width, patches = m.image_width, ((image_size or cfg.data.image_size) // m.patch_size) ** 2
    tokens = 1 + num_kept(patches, ratio)  # cls + visible patches
    embed = patches * m.patch_size**2 * width  # conv over every patch (1 input channel)
    per_block = tokens * (4 + 2 * MLP_RATIO) * width**2 + 2 * tokens**2 * width
    return embed + m.image_depth * per_block + width * m.embed_dim


def text_macs(cfg: Config, length: int) -> int:
    """Multiply-adds of one text's forward pass over `length` tokens (scratch BERT sizes)."""
    name = cfg.model.text.removeprefix("scratch-")
    if name not in TEXT_SIZES:
        raise ValueError(f"model.text: FLOPs are counted for scratch-<size> only, not {name!r}")
    hidden, layers, _, intermediate = TEXT_SIZES[name]
    per_layer = length * (4 * hidden**2 + 2 * hidden * intermediate) + 2 * length**2 * hidden
    return layers * per_layer + hidden * cfg.model.embed_dim


def pair_forward_flops(cfg: Config, ratio: float, text_length: int) -> int:
    """FLOPs (2 per multiply-add) of one image-text pair's forward pass, both towers."""
    return 2 * (image_macs(cfg, ratio) + text_macs(cfg, text_length))


def train_flops_per_pair(cfg: Config, ratio: float, text_length: int) -> int:
    """Training FLOPs per pair: forward + backward = 3x the forward."""
    return 3 * pair_forward_flops(cfg, ratio, text_length)


def step_flops(
    cfg: Config, image_ratio: float, images: int, text_lengths: list[int], image_size: int = 0
) -> int:
    """Training FLOPs (forward + backward) of one step: `images` images at `image_ratio`
    and `image_size` (0 = data.image_size), one text per entry of `text_lengths` (its kept
    tokens, [CLS]/[SEP] included)."""
    per_image = image_macs(cfg, image_ratio, image_size)
    texts = sum(text_macs(cfg, n) for n in text_lengths if n > 0)
    return 3 * 2 * (images * per_image + texts)


def svd_pair_flops(batch: int, kept: int, text_length: int, dim: int, steps: int) -> int:
    """FLOPs of the pair SVD term per step: 2 (K + T) D multiply-adds per pair and power
    step, N^2 pairs, plus the evaluation and backward (~3 steps' worth)."""
    return 2 * batch**2 * 2 * (kept + text_length) * dim * (steps + 3)


AMDAHL_LENGTHS = (77, 128, 256)  # CLIP's context; reports' FINDINGS + IMPRESSION range
AMDAHL_RATIO = 0.75  # FLIP's headline mask ratio
CLIPA_TOKENS = 16  # a CLIPA-sized text budget (its L/16 recipe trained on 8-32 tokens)


def amdahl_rows(cfg: Config, lengths=AMDAHL_LENGTHS, ratio=AMDAHL_RATIO) -> list[dict]:
    """Per text length: forward GFLOPs of each tower, the step-FLOPs speedup of image
    masking at `ratio` (an upper bound on the time speedup), the text tower's share of the
    masked step, and the speedup when the text is also cut to CLIPA_TOKENS tokens."""
    rows = []
    for length in lengths:
        full = pair_forward_flops(cfg, 0.0, length)
        masked = pair_forward_flops(cfg, ratio, length)
        text = 2 * text_macs(cfg, length)
        rows.append({
            "text_tokens": length,
            "image_gflops": round(2 * image_macs(cfg, 0.0) / 1e9, 2),
            "text_gflops": round(text / 1e9, 2),
            "speedup": round(full / masked, 2),
            "text_share": round(text / masked, 3),
            "speedup_text16": round(full / pair_forward_flops(cfg, ratio, CLIPA_TOKENS), 2),
        })  # fmt: skip
    return rows


def amdahl_table(variant_names=("paper", "demo")) -> str:
    """The README's Markdown table of `amdahl_rows` for each named variant."""
    from medflip import variants

    lines = [
        f"| model | text tokens | image / text GFLOPs (fwd) | step speedup at "
        f"{AMDAHL_RATIO:.0%} masking | text share of the masked step | speedup with "
        f"{CLIPA_TOKENS} text tokens |",
        "|---|---|---|---|---|---|",
    ]
    for name in variant_names:
        for r in amdahl_rows(variants.get(name)):
            lines.append(
                f"| {name} | {r['text_tokens']} | {r['image_gflops']:g} / {r['text_gflops']:g} "
                f"| {r['speedup']:.2f}x | {r['text_share']:.0%} | {r['speedup_text16']:.2f}x |"
            )
    return "\n".join(lines)


__all__ = [
    "amdahl_rows",
    "amdahl_table",
    "image_macs",
    "pair_forward_flops",
    "step_flops",
    "svd_pair_flops",
    "text_macs",
    "train_flops_per_pair",
]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="model FLOPs of a training pair")
    parser.add_argument("--amdahl", action="store_true", help="print the README's Amdahl table")
    if parser.parse_args().amdahl:
        print(amdahl_table())
    else:
        parser.print_help()
