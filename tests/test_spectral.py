"""medflip.losses.spectral's pair sigma_1 against torch.linalg.svdvals on both kinds of token sets
(shared direction: power steps settle; near-isotropic: pairs solved exactly), each path on
its own, and its backward against autograd of svdvals."""

import pytest
import torch
import torch.nn.functional as F

from medflip.losses import spectral


def token_sets(shared: float, n=48, k=16, t=40, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(1, 1, d, generator=g) * shared
    a = F.normalize(torch.randn(n, k, d, generator=g) + common, dim=-1)
    lengths = torch.randint(t // 2, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    b = F.normalize(torch.randn(n, t, d, generator=g) + common, dim=-1) * mask[:, :, None]
    return a, b, mask


def svdvals_all(a, b):
    return torch.linalg.svdvals(torch.einsum("ikd,jtd->ijkt", a, b))[..., 0]


@pytest.mark.parametrize("shared", [0.0, 1.0], ids=["near-isotropic", "shared-direction"])
def test_sigma1_within_1e3_of_svdvals(shared):
    a, b, mask = token_sets(shared)
    info = {}
    ours, ref = spectral.pair_top_sigma(a, b, mask, info=info), svdvals_all(a, b)
    err = (ours - ref).abs() / ref
    assert err.max() <= 1e-3, (err.max(), info)  # every pair, not a quantile
    assert (ours <= ref * (1 + 1e-5)).all()  # |S v| for a unit v: never above sigma_1
    assert ours.dtype == torch.float32
    assert spectral.sampled_rel_error(a, b, ours) <= err.max() + 1e-7
    if shared:  # a dominant direction: the power steps settle every pair by themselves
        assert info["exact_pairs"] == 0 and info["steps"] <= spectral.PAIR_MAX_ITERS
    else:  # sigma_2 ~ sigma_1: most pairs would need many steps, so are solved exactly
        assert info["exact_pairs"] > a.shape[0] * b.shape[0] // 2


@pytest.mark.parametrize("shared", [0.0, 1.0], ids=["near-isotropic", "shared-direction"])
def test_exact_path_alone_matches_svdvals(shared):
    # tol 0 and one step: no pair settles, every one goes through the exact path
    a, b, mask = token_sets(shared, n=12)
    info = {}
    ours = spectral.pair_top_sigma(a, b, mask, tol=0.0, max_iters=1, info=info)
    assert info["exact_pairs"] == 12 * 12
    assert torch.allclose(ours, svdvals_all(a, b), rtol=2e-5)


def test_power_path_to_a_tight_tolerance_matches_svdvals():
    # shared direction, bound 1e-5: most pairs settled by power steps (the last few, once
    # cheaper, exactly), all to 1e-5
    a, b, mask = token_sets(2.0, n=12)
    info = {}
    ours = spectral.pair_top_sigma(a, b, mask, tol=1e-5, max_iters=50, info=info)
    assert info["exact_pairs"] < 12 * 12 // 4
    assert torch.allclose(ours, svdvals_all(a, b), rtol=1e-5)


def test_top_eigvec_against_eigh():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 16, 30, generator=g)
    gram = x @ x.transpose(1, 2)  # [64, 16, 16] PSD, generic gaps
    ours = spectral._top_eigvec(gram)
    vals, vecs = torch.linalg.eigh(gram.double())
    cos = (ours.double() * vecs[..., -1]).sum(-1).abs()
    # Rayleigh value: what sigma is computed from
    rayleigh = torch.einsum("mk,mkl,ml->m", ours.double(), gram.double(), ours.double())
    assert ((vals[:, -1] - rayleigh) / vals[:, -1]).abs().max() <= 1e-6
    assert cos.min() >= 0.999  # direction too (up to sign), where the gap allows
    assert (spectral._top_eigvec(torch.zeros(2, 4, 4)) == 0).all()


def rel_err(x, ref):
    return ((x - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("tol, max_iters", [(0.0, 500), (spectral.PAIR_TOL, None)])
def test_backward_matches_autograd_of_svdvals(tol, max_iters):
    # (0, 500): to convergence; (defaults): what a training step runs, where the stopping
    # rule certifies sigma (error ~ theta^2) and the gradient is off by ~theta
    max_iters = max_iters or spectral.PAIR_MAX_ITERS
    a, b, mask = token_sets(1.0, n=6, k=5, t=9, d=8)
    g = torch.Generator().manual_seed(3)
    weights = torch.rand(6, 6, generator=g)
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (spectral.pair_top_sigma(a1, b1, mask, tol=tol, max_iters=max_iters) * weights).sum().backward()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (svdvals_all(a2, b2) * weights).sum().backward()
    if tol == 0:
        assert torch.allclose(a1.grad, a2.grad, atol=1e-4)
        assert torch.allclose(b1.grad, b2.grad, atol=1e-4)
    else:  # measured 4e-4 here
        assert rel_err(a1.grad, a2.grad) <= 1e-2 and rel_err(b1.grad, b2.grad) <= 1e-2


def test_backward_on_exact_pairs_matches_svdvals():
    # near-isotropic at the default settings: the gradient of exactly solved pairs
    a, b, mask = token_sets(0.0, n=8, k=6, t=12, d=16)
    weights = torch.rand(8, 8, generator=torch.Generator().manual_seed(4))
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    info = {}
    (spectral.pair_top_sigma(a1, b1, mask, tol=0.0, info=info) * weights).sum().backward()
    assert info["exact_pairs"] == 8 * 8  # tol 0: only exact solves (or float32 convergence)
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (svdvals_all(a2, b2) * weights).sum().backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-4)
    assert torch.allclose(b1.grad, b2.grad, atol=1e-4)


def test_frobenius_sq_matches_formed_matrices():
    a, b, _ = token_sets(1.0, n=10)
    ref = torch.einsum("ikd,jtd->ijkt", a, b).square().sum((-1, -2))
    assert torch.allclose(spectral._frobenius_sq(a, b), ref, rtol=1e-5)


@pytest.mark.parametrize("shared", [0.3, 1.0, 3.0])
def test_error_bound_holds_after_each_step(shared):
    # the stopping rule's bound against svdvals' truth, wherever it certifies a pair
    a, b, mask = token_sets(shared, n=24)
    ref = svdvals_all(a, b)
    fro_sq = spectral._frobenius_sq(a, b)
    _, u = spectral._start(a, b, mask)
    bufs = spectral._step_buffers(a, b)
    certified = 0
    for _ in range(4):
        n_a = spectral._power_step(u, a, b, bufs)
        n_b = bufs[3].norm(dim=-1)
        u = bufs[3] / n_b[..., None]
        bound = spectral._error_bound(n_a, n_b, fro_sq)
        err = (ref - n_b) / ref
        finite = bound.isfinite()
        certified += int(finite.sum())
        # (a bound below 0: n_b - n_a is float32 rounding, the pair converged)
        assert (err[finite] <= bound[finite].clamp_min(0) + 1e-6).all()
    assert certified > 0


def test_loss_error_metric_is_sigmas_error():
    # svd_sigma_rel_err: the error of sigma_1 itself, not of the scaled score
    from medflip.losses.svd import svd_pair_loss

    a, b, mask = token_sets(1.0, n=16)
    loss, err = svd_pair_loss(a * 3, b * 2, mask, 0.07, with_error=True)
    assert loss.isfinite() and 0 <= err <= 1e-3
