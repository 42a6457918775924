"""Losses against references computed another way: Python loops, svdvals, hand examples."""

import math

import pytest
import torch
import torch.nn.functional as F

from medflip import variants
from medflip.config import apply_overrides
from medflip.losses.contrastive import (
    MedFLIPLoss,
    clip_loss,
    label_targets,
    medclip_loss,
    medflip_loss,
    mim_loss,
    mlm_loss,
    svd_pair_loss,
    svd_spectral_loss,
)
from medflip.losses.svd import pair_sigma1, sigma1, top_singular_vectors

TAU = 0.1


def emb(n=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1),
            F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1))  # fmt: skip


def sims(v, t):
    return [[float(v[i] @ t[j]) for j in range(len(t))] for i in range(len(v))]


# ---- clip ---------------------------------------------------------------------------


def test_clip_loss_matches_loops_and_open_clip_formula():
    v, t = emb()
    s, n = sims(v, t), len(v)
    i2t = -sum(s[i][i] / TAU - math.log(sum(math.exp(s[i][j] / TAU) for j in range(n)))
               for i in range(n)) / n  # fmt: skip
    t2i = -sum(s[j][j] / TAU - math.log(sum(math.exp(s[i][j] / TAU) for i in range(n)))
               for j in range(n)) / n  # fmt: skip
    assert clip_loss(v, t, TAU).item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)
    # open_clip ClipLoss: logit_scale * img @ txt.T, CE both ways, mean.
    logit_scale = 1 / TAU
    per_image = logit_scale * v.float() @ t.float().T
    labels = torch.arange(n)
    ref = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_image.T, labels)) / 2
    assert clip_loss(v, t, TAU).item() == pytest.approx(ref.item(), rel=1e-5)


def test_clip_hand_example():
    # Orthonormal aligned pairs at tau = 0.5: logits 2 on the diagonal, 0 off it.
    eye = torch.eye(2)
    want = -math.log(math.exp(2) / (math.exp(2) + 1))  # 0.1269
    assert clip_loss(eye, eye, 0.5).item() == pytest.approx(want, rel=1e-5)


# ---- labels and medclip -------------------------------------------------------------


def test_label_targets_coding():
    coded = torch.tensor([[1.0, 0.0, -1.0, float("nan")] + [0.0] * 10])
    assert label_targets(coded)[0, :4].tolist() == [1.0, 0.0, 0.5, 0.0]


def test_medclip_matches_loops():
    v, t = emb(5)
    g = torch.Generator().manual_seed(1)
    li = torch.randint(0, 2, (5, 4), generator=g).double()
    lt = torch.randint(0, 2, (5, 4), generator=g).double()
    li[0] = 0  # zero label vector: similarity 0 to everything
    s, n = sims(v, t), 5

    def cos(a, b):
        na, nb = a.norm().item(), b.norm().item()
        return 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)

    def soft_ce(logit_rows, target_rows):
        total = 0.0
        for z, y in zip(logit_rows, target_rows, strict=True):
            ey = [math.exp(x) for x in y]
            lse = math.log(sum(math.exp(x) for x in z))
            total -= sum(e / sum(ey) * (zz - lse) for e, zz in zip(ey, z, strict=True))
        return total / len(logit_rows)

    lab = [[cos(li[i], lt[j]) for j in range(n)] for i in range(n)]
    z = [[x / TAU for x in row] for row in s]
    i2t = soft_ce(z, lab)
    t2i = soft_ce([list(col) for col in zip(*z, strict=True)],
                  [list(col) for col in zip(*lab, strict=True)])  # fmt: skip
    got = medclip_loss(v, t, li, lt, TAU).item()
    assert got == pytest.approx((i2t + t2i) / 2, rel=1e-5)


def test_medclip_identical_labels_gives_uniform_targets():
    # All label vectors equal -> targets uniform -> loss = mean CE to uniform (>= log N).
    v, t = emb(4)
    labels = torch.ones(4, 3)
    z = v.float() @ t.float().T / TAU
    want = (-(z.log_softmax(1)).mean(1).mean() - (z.T.log_softmax(1)).mean(1).mean()) / 2
    assert medclip_loss(v, t, labels, labels, TAU).item() == pytest.approx(want.item(), rel=1e-5)


# ---- medflip (eq. 7) -----------------------------------------------------------------


def test_medflip_matches_loops():
    v, t = emb(5)
    s, n = sims(v, t), 5

    def direction(z):  # softmax over each row of z
        total = 0.0
        for i in range(n):
            lse = math.log(sum(math.exp(x) for x in z[i]))
            p = [math.exp(x - lse) for x in z[i]]
            total -= math.log(p[i]) + sum(math.log(1 - p[j]) for j in range(n) if j != i)
        return total / n

    z = [[x / TAU for x in row] for row in s]
    zt = [list(col) for col in zip(*z, strict=True)]
    assert medflip_loss(v, t, TAU).item() == pytest.approx(
        (direction(z) + direction(zt)) / 2, rel=1e-5
    )


def test_medflip_negative_term_is_a_penalty():
    # Eq. 7's first term averaged over both directions is clip_loss; the corrected second
    # term -sum log(1 - y_ij) is >= 0 and grows as a negative pair gets more similar.
    # (As printed, + sum log(1 - y_ij) would make the excess negative and reward confusion.)
    v, t = emb(4)
    excess = medflip_loss(v, t, TAU) - clip_loss(v, t, TAU)
    t2 = t.clone()
    t2[1] = F.normalize(t[1] + 2.0 * v[0], dim=0)  # text 1 now close to image 0
    excess2 = medflip_loss(v, t2, TAU) - clip_loss(v, t2, TAU)
    assert 0 < excess < excess2


# ---- SVD term ------------------------------------------------------------------------


def tokens(n=4, k=5, t=7, d=6, shared=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(1, 1, d, generator=g) * shared
    a = torch.randn(n, k, d, generator=g) + common
    b = torch.randn(n, t, d, generator=g) + common
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[0, 4:] = False  # a shorter text
    mask[min(2, n - 1), -1] = False
    return a, b, mask


def svdvals_pairs(a, b, mask):
    """Reference: for each (i, j) build S_ij explicitly and take svdvals."""
    n = a.shape[0]
    out = torch.zeros(n, n)
    an = F.normalize(a, dim=-1)
    for j in range(n):
        bj = F.normalize(b[j][mask[j]], dim=-1)
        for i in range(n):
            s = torch.linalg.svdvals(an[i] @ bj.T)[0]
            out[i, j] = s / math.sqrt(a.shape[1] * bj.shape[0])
    return out


@pytest.mark.parametrize("shared", [0.0, 2.0])
def test_pair_sigma1_matches_svdvals(shared):
    a, b, mask = tokens(shared=shared)
    ref = svdvals_pairs(a, b, mask)
    assert torch.allclose(pair_sigma1(a, b, mask, iters=200), ref, rtol=1e-4, atol=1e-6)


def test_pair_sigma1_default_iters_on_structured_tokens():
    # Trained (and freshly initialised) towers give anisotropic tokens: a shared component.
    a, b, mask = tokens(n=6, k=8, t=12, d=16, shared=1.5, seed=2)
    assert torch.allclose(pair_sigma1(a, b, mask), svdvals_pairs(a, b, mask), rtol=1e-3)


def test_svd_pair_loss_matches_loop_reference():
    a, b, mask = tokens(shared=1.0)
    s = svdvals_pairs(a, b, mask) / TAU
    n = s.shape[0]
    ref = 0.0
    for i in range(n):
        ref -= (s[i, i] - torch.logsumexp(s[i], 0)).item() / (2 * n)
        ref -= (s[i, i] - torch.logsumexp(s[:, i], 0)).item() / (2 * n)
    assert svd_pair_loss(a, b, mask, TAU).item() == pytest.approx(ref, rel=1e-4)


def test_sigma1_gradient_matches_svdvals_autograd():
    g = torch.Generator().manual_seed(0)
    mat = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    ours = mat.clone().requires_grad_()
    sigma1(ours, iters=200).sum().backward()
    ref = mat.clone().requires_grad_()
    torch.linalg.svdvals(ref)[:, 0].sum().backward()
    assert torch.allclose(ours.grad.double(), ref.grad, atol=1e-4)


def test_pair_sigma1_gradient_matches_autograd_of_svdvals():
    a, b, mask = tokens(n=3, shared=1.0)
    mask[:] = True
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    pair_sigma1(a1, b1, mask, iters=200, tol=0.0).sum().backward()  # to convergence
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    an, bn = F.normalize(a2, dim=-1), F.normalize(b2, dim=-1)
    ref = torch.linalg.svdvals(torch.einsum("ikd,jtd->ijkt", an, bn))[..., 0]
    (ref / math.sqrt(a.shape[1] * b.shape[1])).sum().backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-4)
    assert torch.allclose(b1.grad, b2.grad, atol=1e-4)


def test_repeated_singular_values_give_finite_gradients():
    # S = I (all singular values 1): svdvals' backward divides by s_i - s_j = 0.
    a = torch.eye(4).repeat(2, 1, 1).requires_grad_()
    b = torch.eye(4).repeat(2, 1, 1).requires_grad_()
    loss = svd_pair_loss(a, b, torch.ones(2, 4, dtype=torch.bool), TAU)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert pair_sigma1(a, b, torch.ones(2, 4, dtype=torch.bool)).detach()[0, 0] == pytest.approx(
        0.25  # sigma_1(I_4) / sqrt(4 * 4)
    )


def test_top_singular_vectors_zero_matrix():
    u, v = top_singular_vectors(torch.zeros(2, 3, 4))
    assert torch.equal(u, torch.zeros(2, 3)) and torch.equal(v, torch.zeros(2, 4))


def test_svd_spectral_loss_matches_reference():
    v, t = emb(6)
    s = v.float() @ t.float().T
    pos = s.diagonal().mean()
    neg = torch.linalg.svdvals(s - torch.diag(s.diagonal()))[0] / 5
    want = math.log1p(math.exp((neg - pos).item() / TAU))
    assert svd_spectral_loss(v, t, TAU).item() == pytest.approx(want, rel=1e-4)
    # hand example: collapse (all embeddings equal) -> pos = neg = 1 -> log 2
    same = F.normalize(torch.ones(5, 3), dim=-1)
    assert svd_spectral_loss(same, same, TAU).item() == pytest.approx(math.log(2), rel=1e-5)


# ---- properties shared by the contrastive and SVD losses ------------------------------


def all_losses(v, t, a, b, mask, labels):
    return {
        "clip": clip_loss(v, t, TAU),
        "medclip": medclip_loss(v, t, labels, labels, TAU),
        "medflip": medflip_loss(v, t, TAU),
        "spectral": svd_spectral_loss(v, t, TAU),
        "pair": svd_pair_loss(a, b, mask, TAU),
    }


def test_symmetric_in_modalities():
    v, t = emb(5)
    g = torch.Generator().manual_seed(3)
    li, lt = torch.rand(5, 4, generator=g), torch.rand(5, 4, generator=g)
    assert clip_loss(v, t, TAU).item() == pytest.approx(clip_loss(t, v, TAU).item())
    assert medflip_loss(v, t, TAU).item() == pytest.approx(medflip_loss(t, v, TAU).item())
    assert svd_spectral_loss(v, t, TAU).item() == pytest.approx(svd_spectral_loss(t, v, TAU).item())
    assert medclip_loss(v, t, li, lt, TAU).item() == pytest.approx(
        medclip_loss(t, v, lt, li, TAU).item()
    )
    a, b, _ = tokens(k=6, t=6, shared=1.0)
    full = torch.ones(4, 6, dtype=torch.bool)
    assert svd_pair_loss(a, b, full, TAU).item() == pytest.approx(
        svd_pair_loss(b, a, full, TAU).item(), rel=1e-4
    )


def test_aligned_pairs_score_lower_than_shuffled():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    t = F.normalize(v + 0.1 * torch.randn(8, 16, generator=g), dim=-1)
    labels = torch.eye(8)[:, :8]
    a = v[:, None, :] + 0.1 * torch.randn(8, 4, 16, generator=g)  # image tokens near v_i
    b = t[:, None, :] + 0.1 * torch.randn(8, 5, 16, generator=g)
    mask = torch.ones(8, 5, dtype=torch.bool)
    perm = torch.roll(torch.arange(8), 1)
    aligned = all_losses(v, t, a, b, mask, labels)
    shuffled = all_losses(v, t[perm], a, b[perm], mask, labels)
    for name in aligned:
        assert aligned[name] < shuffled[name], name


@pytest.mark.parametrize("case", ["identical", "single_row", "zero_labels"])
def test_degenerate_inputs_finite(case):
    n = 1 if case == "single_row" else 4
    v, t = emb(n, 8)
    if case == "identical":
        v = t = F.normalize(torch.ones(n, 8, dtype=torch.float64), dim=-1)
    a, b, mask = tokens(n=n)
    if case == "identical":
        a = b = torch.ones(n, 5, 6)
        mask = torch.ones(n, 5, dtype=torch.bool)
    labels = torch.zeros(n, 14) if case == "zero_labels" else torch.ones(n, 14)
    params = [x.clone().float().requires_grad_() for x in (v, t, a, b)]
    losses = all_losses(*params, mask, labels)
    sum(losses.values()).backward()
    for name, value in losses.items():
        assert torch.isfinite(value), name
    assert all(torch.isfinite(p.grad).all() for p in params)
    if case == "single_row":
        assert losses["clip"].item() == pytest.approx(0.0, abs=1e-6)


def test_finite_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(6, 8, generator=g)
    a, b, mask = tokens(n=6, d=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v, t = lin(x), lin(x + 0.1)
        ta, tb = lin(a), lin(b)
        assert v.dtype == torch.bfloat16
        losses = all_losses(v, t, ta, tb, mask, torch.rand(6, 14, generator=g))
        losses["tau_small"] = clip_loss(v, t, 0.01)
    sum(losses.values()).backward()
    assert all(torch.isfinite(x) for x in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in lin.parameters())


# ---- MLM and MIM ---------------------------------------------------------------------


def test_mlm_loss_ignores_unlabelled_positions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=g)
    labels = torch.tensor([[1, -100, 4], [-100, -100, 0]])
    ref = -(logits[0, 0].log_softmax(0)[1] + logits[0, 2].log_softmax(0)[4]
            + logits[1, 2].log_softmax(0)[0]) / 3  # fmt: skip
    assert mlm_loss(logits, labels).item() == pytest.approx(ref.item(), rel=1e-5)
    nothing = mlm_loss(logits, torch.full((2, 3), -100))
    assert nothing.item() == 0.0


def test_mim_loss_only_masked_patches():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert mim_loss(pred, target, mask).item() == pytest.approx((1.0 + 2.0) / 2)
    target[0, 2] = -50.0  # a visible patch: ignored
    assert mim_loss(pred, target, mask).item() == pytest.approx(1.5)
    assert mim_loss(pred, target, torch.zeros(1, 3)).item() == 0.0


# ---- MedFLIPLoss ---------------------------------------------------------------------


def outputs_for(n=6, seed=0):
    v, t = emb(n, 8, seed)
    a, b, mask = tokens(n=n, d=8, seed=seed)
    return {
        "image_emb": v.float(), "text_emb": t.float(), "image_tokens": a, "text_tokens": b,
        "text_token_mask": mask, "temperature": torch.tensor(TAU),
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["clip", "medclip", "medflip"])
@pytest.mark.parametrize("svd_form", ["pair", "spectral"])
def test_medflip_loss_module_combines_parts(kind, svd_form):
    cfg = apply_overrides(
        variants.get("tiny"),
        {"loss.kind": kind, "loss.svd_weight": 0.3, "loss.svd_form": svd_form,
         "loss.mlm_weight": 0.5, "loss.mim_weight": 2.0},
    )  # fmt: skip
    out = outputs_for()
    g = torch.Generator().manual_seed(0)
    out.update(mlm_logits=torch.randn(5, 11, generator=g), mlm_labels=torch.arange(5),
               mim_pred=torch.randn(6, 4, 3, generator=g), mim_target=torch.zeros(6, 4, 3),
               mim_mask=torch.ones(6, 4))  # fmt: skip
    coded = torch.randint(-1, 2, (6, 14), generator=g).float()
    batch = {"labels": coded, "image_labels": coded.flip(0), "paired": torch.ones(6, dtype=bool)}
    parts = MedFLIPLoss(cfg)(out, batch)
    want = parts["loss_contrastive"] + 0.3 * parts["loss_svd"]
    want = want + 0.5 * parts["loss_mlm"] + 2.0 * parts["loss_mim"]
    assert parts["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    assert parts["loss_svd"] > 0 and parts["loss_mlm"] > 0 and parts["loss_mim"] > 0


def test_medflip_loss_module_uses_only_paired_rows_and_zero_when_inactive():
    cfg = variants.get("tiny")  # clip, svd_weight 0
    out = outputs_for()
    paired = torch.tensor([True, True, False, True, False, True])
    parts = MedFLIPLoss(cfg)(out, {"paired": paired})
    sub = clip_loss(out["image_emb"][paired], out["text_emb"][paired], TAU)
    assert parts["loss_contrastive"].item() == pytest.approx(sub.item(), rel=1e-6)
    assert parts["loss_svd"].item() == parts["loss_mlm"].item() == parts["loss_mim"].item() == 0
    none = MedFLIPLoss(cfg)(out, {"paired": torch.zeros(6, dtype=torch.bool)})
    assert none["loss"].item() == 0.0
