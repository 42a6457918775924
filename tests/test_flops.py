"""medflip.models.flops against a hand count (tiny variant) and torch's own FLOP counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from medflip import variants
from medflip.config import apply_overrides
from medflip.models import flops
from medflip.models.medflip import MedFLIP

VOCAB, PAD, MASK = 60, 0, 4


def test_tiny_variant_matches_a_hand_count():
    cfg = variants.get("tiny")  # 32 px, patch 8: 16 patches; ViT 32 wide, 1 block; E = 16
    # ratio 0.75: 4 patches kept, + cls = 5 tokens
    embed = 16 * 64 * 32  # every patch: 8 x 8 pixels x 32 channels
    block = 5 * (3 + 1 + 8) * 32 * 32 + 2 * 25 * 32  # qkv, proj, MLP 32-128-32; attention
    image = embed + block + 32 * 16
    assert flops.image_macs(cfg, 0.75) == image == 32768 + 61440 + 1600 + 512
    # scratch-mini: H 128, 2 layers, I 512; 10 tokens
    layer = 10 * (4 * 128 * 128 + 2 * 128 * 512) + 2 * 100 * 128
    text = 2 * layer + 128 * 16
    assert flops.text_macs(cfg, 10) == text
    assert flops.pair_forward_flops(cfg, 0.75, 10) == 2 * (image + text)
    assert flops.train_flops_per_pair(cfg, 0.75, 10) == 6 * (image + text)


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_count_agrees_with_torch_flop_counter(ratio):
    """Torch counts what really runs (matmuls, conv, SDPA); ours leaves out the few
    non-matmul parts torch also skips, so the two agree to within 1 %."""
    cfg = apply_overrides(variants.get("tiny"), {"model.image_depth": 2})
    torch.manual_seed(0)
    model = MedFLIP(cfg, VOCAB, PAD, MASK, (PAD, 1, 2, 3, MASK)).eval()
    n, t = 3, 12
    batch = {
        "image": torch.randn(n, 1, 32, 32),
        "input_ids": torch.randint(5, VOCAB, (n, t)),
        "attention_mask": torch.ones(n, t, dtype=torch.long),
    }
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch, image_ratio=ratio)
    want = n * flops.pair_forward_flops(cfg, ratio, t)
    assert counter.get_total_flops() == pytest.approx(want, rel=0.01)
