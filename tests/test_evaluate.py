"""Evaluation metrics against brute-force references and hand-worked examples."""

import torch
import torch.nn.functional as F

from medflip import evaluate as ev


def test_precision_at_k_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(13, 6, generator=gen), dim=-1)
    g = F.normalize(torch.randn(29, 6, generator=gen), dim=-1)
    qc, gc = torch.randint(0, 3, (13,), generator=gen), torch.randint(0, 3, (29,), generator=gen)
    got = ev.precision_at_k(q, g, qc, gc)
    for k in (1, 2, 5, 10):
        per_query = []
        for i in range(13):
            sims = [(float(q[i] @ g[j]), j) for j in range(29)]
            top = [j for _, j in sorted(sims, reverse=True)[:k]]
            per_query.append(sum(int(gc[j] == qc[i]) for j in top) / k)
        assert abs(got[k] - sum(per_query) / 13) < 1e-6


def test_precision_at_k_hand_example():
    # Two queries, three gallery items on a line: query 0 is closest to item 0 (same class).
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    got = ev.precision_at_k(q, g, torch.tensor([0, 1]), torch.tensor([0, 1, 0]), ks=(1, 2))
    # q0: top1 item0 (hit), top2 item0,item1 (1/2). q1: top1 item2 (miss), top2 item2,item1 (1/2).
    assert got[1] == 0.5 and got[2] == 0.5


def test_macro_f1_hand_example():
    pred, target = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1])
    # class0: tp1 fp1 fn0 -> 2/3; class1: tp1 fp0 fn2 -> 0.5; class2: tp0 -> 0
    assert abs(ev.macro_f1(pred, target, 3) - (2 / 3 + 0.5 + 0) / 3) < 1e-9


def test_class_embeddings_is_normalised_prompt_mean():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 0.0]])
    cls = ev.class_embeddings(text, prompts_per_class=2)
    assert torch.allclose(cls[0], torch.tensor([2**-0.5, 2**-0.5]))
    assert torch.allclose(cls[1], torch.tensor([1.0, 0.0]))
    assert ev.zero_shot(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), cls).tolist() == [1, 0]


def test_linear_probe_learns_separable_and_is_chance_on_noise():
    gen = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 16, generator=gen) * 3
    y = torch.randint(0, 4, (400,), generator=gen)
    x = centers[y] + torch.randn(400, 16, generator=gen)
    assert ev.linear_probe(x[:300], y[:300], x[300:], y[300:], 4) > 0.95
    noise = torch.randn(400, 16, generator=gen)
    assert ev.linear_probe(noise[:300], y[:300], noise[300:], y[300:], 4) < 0.45
