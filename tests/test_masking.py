"""masking.py: keep-index sampling and BERT MLM corruption."""

import pytest
import torch

from medflip import variants
from medflip.config import apply_overrides
from medflip.models.masking import mask_tokens, num_kept, random_keep_indices, ratios_for

SPECIAL = (0, 1, 2, 3)  # pad, unk, cls, sep
MASK_ID, VOCAB = 4, 50


@pytest.mark.parametrize(
    "patches, ratio, kept",
    [(64, 0.0, 64), (64, 0.5, 32), (64, 0.75, 16), (64, 0.9, 6), (49, 0.75, 12), (4, 0.95, 1)],
)
def test_num_kept(patches, ratio, kept):
    assert num_kept(patches, ratio) == kept


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_num_kept_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask.image_ratio"):
        num_kept(64, ratio)


def test_keep_indices_partition_each_row():
    keep, masked = random_keep_indices(8, 64, 0.75, "cpu", torch.Generator().manual_seed(0))
    assert keep.shape == (8, 16) and masked.shape == (8, 48)
    both = torch.cat([keep, masked], dim=1).sort(dim=1).values
    assert torch.equal(both, torch.arange(64).expand(8, -1))
    assert torch.equal(keep, keep.sort(dim=1).values)
    assert len({tuple(row.tolist()) for row in keep}) == 8  # rows differ


def test_keep_indices_reproducible_from_rng_state():
    torch.manual_seed(3)
    first = random_keep_indices(4, 16, 0.5)
    torch.manual_seed(3)
    second = random_keep_indices(4, 16, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_keep_indices_uniform():
    # 4000 rows x 4 kept of 16: each patch kept with p = 1/4; binomial sd ~ 0.007.
    keep, _ = random_keep_indices(4000, 16, 0.75, "cpu", torch.Generator().manual_seed(1))
    freq = torch.bincount(keep.flatten(), minlength=16).float() / 4000
    assert torch.allclose(freq, torch.full((16,), 0.25), atol=0.03)


def _ids(n=64, t=40, real=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, t), generator=g)
    mask = torch.zeros(n, t, dtype=torch.long)
    mask[:, :real] = 1
    ids[:, 0], ids[:, real - 1] = 2, 3
    ids[mask == 0] = 0
    return ids, mask


def test_mask_tokens_only_touches_maskable_tokens():
    ids, mask = _ids()
    g = torch.Generator().manual_seed(0)
    out, labels = mask_tokens(ids, mask, 0.3, MASK_ID, SPECIAL, VOCAB, g)
    selected = labels != -100
    assert not selected[mask == 0].any()
    assert not selected[torch.isin(ids, torch.tensor(SPECIAL))].any()
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(out[~selected], ids[~selected])  # unselected tokens untouched


def test_mask_tokens_rates():
    ids, mask = _ids(n=400, t=60, real=52)
    g = torch.Generator().manual_seed(0)
    out, labels = mask_tokens(ids, mask, 0.15, MASK_ID, SPECIAL, VOCAB, g)
    selected = labels != -100
    maskable = 400 * 50
    assert abs(selected.sum().item() / maskable - 0.15) < 0.01
    as_mask = (out[selected] == MASK_ID).float().mean().item()
    kept = (out[selected] == ids[selected]).float().mean().item()  # includes random==orig
    assert abs(as_mask - 0.8) < 0.02
    assert abs(kept - (0.1 + 0.1 / VOCAB)) < 0.02


def test_mask_tokens_at_least_one_per_row():
    ids, mask = _ids(n=200, t=8, real=4)  # 2 maskable tokens per row
    g = torch.Generator().manual_seed(0)
    _, labels = mask_tokens(ids, mask, 0.01, MASK_ID, SPECIAL, VOCAB, g)
    assert ((labels != -100).sum(dim=1) >= 1).all()


def test_mask_tokens_rows_without_maskable_tokens_and_ratio_zero():
    ids = torch.tensor([[2, 3, 0, 0], [2, 7, 8, 3]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    out, labels = mask_tokens(ids, mask, 0.5, MASK_ID, SPECIAL, VOCAB)
    assert (labels[0] == -100).all() and torch.equal(out[0], ids[0])
    assert (labels[1] != -100).any()
    out, labels = mask_tokens(ids, mask, 0.0, MASK_ID, SPECIAL, VOCAB)
    assert torch.equal(out, ids) and (labels == -100).all()


def test_ratios_for_variants():
    base = variants.get("tiny")
    want = {"none": (0.5, 0.0), "image": (0.5, 0.0), "text": (0.5, 0.15), "both": (0.5, 0.15)}
    for variant, ratios in want.items():
        cfg = apply_overrides(base, {"mask.variant": variant, "mask.image_ratio": 0.5})
        assert ratios_for(cfg) == ratios
        assert ratios_for(cfg, unmasked=True) == (0.0, 0.0)
