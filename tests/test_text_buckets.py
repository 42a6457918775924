"""Length-bucketed text forward: the same function as one trimmed batch, and the bucket
rule's split checked against brute force over every split."""

import itertools

import pytest
import torch

from medflip import variants
from medflip.models.text import TextTower
from medflip.models.text_buckets import length_buckets, row_lengths

VOCAB, PAD = 60, 0


def padded_cost(lengths, groups, overhead):
    return sum(len(g) * max(max(lengths[i] for i in g), 1) + overhead for g in groups)


def brute_force(lengths, max_buckets, overhead):
    """Least cost over every split of the sorted rows into <= max_buckets runs."""
    s = sorted(lengths)
    n, best = len(s), float("inf")
    for k in range(1, max_buckets + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = (0, *cuts, n)
            runs = [s[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            best = min(best, sum(len(r) * max(max(r), 1) + overhead for r in runs))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_buckets,overhead", [(2, 0), (3, 5), (4, 20), (3, 1000)])
def test_buckets_are_the_least_padded_split(seed, max_buckets, overhead):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 40, (9,), generator=g).tolist()
    groups = length_buckets(lengths, max_buckets, overhead)
    assert sorted(i for grp in groups for i in grp) == list(range(9))  # a partition
    assert 1 <= len(groups) <= max_buckets
    assert padded_cost(lengths, groups, overhead) == brute_force(lengths, max_buckets, overhead)


def test_one_bucket_when_a_call_costs_more_than_the_padding_saved():
    assert length_buckets([5, 6, 7, 8], 4, overhead=100) == [[0, 1, 2, 3]]
    assert length_buckets([3], 4) == [[0]] and length_buckets([], 4) == [[]]
    assert length_buckets([5, 1, 9], 1) == [[0, 1, 2]]


def test_row_lengths_last_real_column():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert row_lengths(mask) == [2, 3, 0, 4]


def spread_batch(n=48, t=40, seed=0):
    """Rows of 2..t-1 real tokens (one all-padding row): several buckets at n = 48."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, t, (n,), generator=g)
    lengths[5] = 0
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # [n, t]
    ids = torch.randint(5, VOCAB, (n, t), generator=g) * mask
    return ids, mask


def run(tower, ids, mask, buckets):
    """Outputs and parameter gradients of a loss on pooled and (real) token outputs."""
    tower.buckets = buckets
    tower.zero_grad()
    out = tower(ids, mask)
    real = out.attention_mask[:, :, None]  # [N, T', 1]
    (out.pooled.square().sum() + (out.tokens * real).sin().sum()).backward()
    grads = {k: p.grad.clone() for k, p in tower.named_parameters() if p.grad is not None}
    return out, grads


def test_bucketed_forward_equals_one_trimmed_batch():
    torch.manual_seed(0)
    tower = TextTower(variants.get("tiny"), VOCAB, PAD, mlm=False)
    ids, mask = spread_batch()
    groups = length_buckets(row_lengths(mask), 4)
    assert len(groups) > 1  # the test exercises bucketing
    plain, plain_grads = run(tower, ids, mask, 1)
    bucketed, grads = run(tower, ids, mask, 4)
    real = plain.attention_mask.bool()  # [N, T']
    assert bucketed.tokens.shape == plain.tokens.shape == (48, 39, tower.width)
    assert torch.equal(bucketed.attention_mask, plain.attention_mask)
    assert torch.equal(bucketed.input_ids, plain.input_ids)
    torch.testing.assert_close(bucketed.pooled, plain.pooled, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bucketed.tokens[real], plain.tokens[real], rtol=1e-5, atol=1e-5)
    assert grads.keys() == plain_grads.keys() and len(grads) > 10
    # Absolute tolerance on the gradients' scale: some (attention key biases) are exactly
    # zero in exact arithmetic, so only rounding noise is left in them.
    scale = max(g.abs().max() for g in plain_grads.values())
    for name, g in plain_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_bucketing_changes_the_function_if_rows_were_mixed_up():
    """The equality test can fail: outputs scattered back in the wrong order differ."""
    torch.manual_seed(0)
    tower = TextTower(variants.get("tiny"), VOCAB, PAD, mlm=False)
    ids, mask = spread_batch()
    with torch.no_grad():
        pooled = tower(ids, mask).pooled
        shuffled = tower(ids.roll(1, dims=0), mask.roll(1, dims=0)).pooled.roll(-1, dims=0)
        torch.testing.assert_close(shuffled, pooled, rtol=1e-5, atol=1e-5)  # order-free
        assert (tower(ids.roll(1, dims=0), mask.roll(1, dims=0)).pooled - pooled).abs().max() > 1e-2


def test_mlm_logits_on_bucketed_tokens():
    torch.manual_seed(0)
    tower = TextTower(variants.get("tiny"), VOCAB, PAD, mlm=True)
    ids, mask = spread_batch()
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    labels[mask == 0] = -100
    outs = []
    for buckets in (1, 4):
        tower.buckets = buckets
        with torch.no_grad():
            out = tower(ids, mask)
            outs.append(tower.mlm_logits(out.tokens, labels[:, : out.tokens.shape[1]]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-5)
    assert torch.equal(outs[1][1], outs[0][1])
