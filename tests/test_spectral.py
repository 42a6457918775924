"""medflip.spectral's pair sigma_1 against torch.linalg.svdvals, at the demo's shapes (the
bf16 iteration path), on both kinds of token sets, and its backward against autograd."""

import pytest
import torch
import torch.nn.functional as F

from medflip import spectral


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
    # bf16 iterations only where bf16 is native; either path must meet the bound
    want = torch.bfloat16 if spectral.native_bf16(a.device.type) else torch.float32
    assert spectral._iteration_dtype(a, b)[0] == want
    ours, ref = spectral.pair_top_sigma(a, b, mask), svdvals_all(a, b)
    err = (ours - ref).abs() / ref
    assert err.quantile(0.99) <= 1e-3, err.max()
    assert (ours <= ref * (1 + 1e-5)).all()  # a Rayleigh value: never above sigma_1
    assert spectral.sampled_rel_error(a, b, ours) <= err.max() + 1e-7


def test_backward_matches_autograd_of_svdvals():
    a, b, mask = token_sets(1.0, n=6, k=5, t=9, d=8)
    g = torch.Generator().manual_seed(3)
    weights = torch.rand(6, 6, generator=g)
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (spectral.pair_top_sigma(a1, b1, mask, tol=0.0, max_iters=500) * weights).sum().backward()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    (svdvals_all(a2, b2) * weights).sum().backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-4)
    assert torch.allclose(b1.grad, b2.grad, atol=1e-4)
