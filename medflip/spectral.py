"""Top singular values by power iteration: sigma_1 of every image-text token-similarity
matrix (the pair SVD term, eq. 6) and of single dense matrices (the spectral form).

Pairs. S_ij = A_i B_j^T [K, T] for image i's K visible tokens A_i [K, D] and text j's T
tokens B_j [T, D], never formed: u <- A_i (B_j^T (B_j (A_i^T u))) is four batched matmuls
over all N_i x N_j pairs, (K + T) D multiply-adds per pair and half-step instead of the
K T D that forming S_ij costs. Two vectors per pair with Rayleigh-Ritz (subspace
iteration), so near-isotropic tokens, whose sigma_2 is close to sigma_1, still converge.

Precision split (benchmarks/svd.py): the iterations only have to find the direction u, so
they run in bf16 (5x faster than float32 on these CPUs; a direction off by theta costs
sigma ~theta^2, and bf16 rounding leaves theta ~1e-3). sigma itself is then evaluated once
in float32 as the Rayleigh value u^T S_ij v with v = S_ij^T u / |S_ij^T u|, accurate to
second order in the direction's error. Iteration stops when every pair's direction moved
less than `tol` in the last step (in bf16 at least 5e-3, its rounding floor), or after
`max_iters`.

Gradient: at convergence d sigma_1 = u^T dS v (envelope theorem), which stays finite when
sigma_1 is repeated, where `torch.linalg.svdvals`' backward divides by sigma_i - sigma_j.
The custom backward uses it directly: grad A_i = sum_j g_ij u_ij (B_j^T v_ij)^T and
grad B_j = sum_i g_ij v_ij (A_i^T u_ij)^T, reusing the forward's float32 products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medflip.step import native_bf16

# bf16 steps at most (benchmarks/svd.py reports the steps taken on both kinds of tokens).
PAIR_MAX_ITERS = 48
# Largest per-pair change of the unit direction u in one step at which iteration stops,
# and the least that bf16 iterations can resolve (its rounding moves u by ~2e-3 a step).
PAIR_TOL = 1e-3
BF16_TOL_FLOOR = 5e-3
DENSE_ITERS = 30  # single dense matrices (spectral form): cheap, so iterate to convergence


def _unit_last(x: torch.Tensor) -> torch.Tensor:
    """x / |x| along the last dim; zero stays zero."""
    return x * x.square().sum(-1, keepdim=True).clamp_min(1e-30).rsqrt()


def _iteration_dtype(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.dtype, float]:
    """(dtype, smallest usable tol) for the iterations: bf16 where its speed matters (a step
    over all pairs costs >= 4M multiply-adds) and bf16 is native (on an AVX2-only CPU its
    matmuls are ~10x slower than float32), with a floor on the tolerance at bf16's rounding
    noise in a unit vector; float32 otherwise (small problems, AVX2 CPUs)."""
    n_i, k, d = a.shape
    big = n_i * b.shape[0] * (k + b.shape[1]) * d >= 2**22
    if big and native_bf16(a.device.type):
        return torch.bfloat16, BF16_TOL_FLOOR
    return torch.float32, 0.0


def _apply_gram(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """S_ij S_ij^T x for vectors x [N_i, V, N_j, K] (V per pair) -> [N_i, V, N_j, K]: four
    batched matmuls, pairs i-major for the image side and j-major for the text side."""
    n_i, n_v, n_j, k = x.shape
    w = torch.bmm(x.reshape(n_i, n_v * n_j, k), a)  # [N_i, V N_j, D] = A_i^T x
    w = w.view(n_i, n_v, n_j, -1).permute(2, 1, 0, 3).reshape(n_j, n_v * n_i, -1)
    v = torch.bmm(w, b.transpose(1, 2))  # [N_j, V N_i, T] = S_ij^T x
    z = torch.bmm(v, b)  # [N_j, V N_i, D] = B_j^T S_ij^T x
    z = z.view(n_j, n_v, n_i, -1).permute(2, 1, 0, 3).reshape(n_i, n_v * n_j, -1)
    return torch.bmm(z, a.transpose(1, 2)).view(n_i, n_v, n_j, k)  # A_i B_j^T B_j A_i^T x


def _ritz_step(y1, y2, x1, x2):
    """Rayleigh-Ritz on span(x1, x2) (orthonormal) given y = M x: the top Ritz direction
    and its complement, both multiplied by M, orthonormalised. Closed-form 2x2 eigenvector."""
    p, r, q = (x1 * y1).sum(-1), (x1 * y2).sum(-1), (x2 * y2).sum(-1)  # H = X^T M X
    lam = (p + q) / 2 + ((p - q).square() / 4 + r.square()).sqrt()
    c_a = torch.stack([r, lam - p], -1)  # two forms of H's top eigenvector: take the
    c_b = torch.stack([lam - q, r], -1)  # better-conditioned one
    c = torch.where((c_a.square().sum(-1) >= c_b.square().sum(-1))[..., None], c_a, c_b)
    c = _unit_last(c)
    c[..., 0] = torch.where(c.square().sum(-1) > 0, c[..., 0], 1.0)  # H = lam I: any
    c1, c2 = c[..., :1], c[..., 1:]
    new1 = _unit_last(c1 * y1 + c2 * y2)  # M X c
    new2 = -c2 * y1 + c1 * y2  # M X c_perp
    new2 = _unit_last(new2 - (new2 * new1).sum(-1, keepdim=True) * new1)
    return new1, new2


def pair_directions(
    a: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor, tol: float, max_iters: int
) -> tuple[torch.Tensor, int]:
    """Leading left singular vectors of every S_ij = A_i B_j^T, without gradient.

    a [N_i, K, D], b [N_j, T, D] (excluded rows zero), b_mask [N_j, T] -> (u [N_i, N_j, K]
    unit float32, steps taken). Subspace iteration on two vectors with Rayleigh-Ritz: the
    top direction converges at rate (sigma_3 / sigma_1)^2 a step instead of power
    iteration's (sigma_2 / sigma_1)^2 -- near-isotropic tokens have sigma_2 close to sigma_1.
    Warm start: S_ij m_j and S_ij m'_j, m_j the sum of text j's tokens and m'_j their
    alternating-sign sum: one GEMM each (all image tokens x all texts), and S_ij m_j is
    already the top direction when the tokens share one.
    """
    with torch.no_grad():
        n_i, k, d = a.shape
        half, floor = _iteration_dtype(a, b)
        tol = max(tol, floor)
        a16, b16 = a.to(half), b.to(half)
        signs = 1 - 2 * (torch.arange(b.shape[1], device=b.device) % 2)  # [T] +1, -1, ...
        m = torch.stack([b_mask.float(), b_mask * signs], 1)  # [N_j, 2, T]
        starts = torch.bmm(m, b).reshape(-1, d)  # [N_j 2, D]
        x = (a.reshape(n_i * k, d) @ starts.T).view(n_i, k, -1, 2).permute(0, 3, 2, 1).contiguous()
        x1 = _unit_last(x[:, 0]) + 1e-6  # [N_i, N_j, K]; + eps: never an exact zero start
        x2 = x[:, 1] - (x[:, 1] * x1).sum(-1, keepdim=True) * x1
        x2 = _unit_last(x2)
        steps = 0
        while steps < max_iters:
            steps += 1
            y = _apply_gram(torch.stack([x1, x2], 1).to(half), a16, b16).float()
            new1, x2 = _ritz_step(y[:, 0], y[:, 1], x1, x2)
            moved = (2 * (1 - (new1 * x1).sum(-1).abs())).clamp_min(0).max().sqrt().item()
            x1 = new1
            if moved <= tol:
                break
    return x1, steps


class _PairSigma1(torch.autograd.Function):
    """sigma_1 of every S_ij from given unit directions u; envelope-theorem backward."""

    @staticmethod
    def forward(ctx, a, b, u):  # a [N_i, K, D], b [N_j, T, D], u [N_i, N_j, K]
        w = torch.bmm(u, a)  # [N_i, N_j, D] = A_i^T u, float32
        v = torch.bmm(w.transpose(0, 1), b.transpose(1, 2))  # [N_j, N_i, T] = S^T u
        norm = v.square().sum(-1, keepdim=True).sqrt()  # [N_j, N_i, 1] = sigma (Rayleigh)
        v = v / norm.clamp_min(1e-30)  # unit right singular vectors
        z = torch.bmm(v, b).transpose(0, 1)  # [N_i, N_j, D] = B_j^T v
        sigma = (w * z).sum(-1)  # [N_i, N_j] = u^T S v
        ctx.save_for_backward(u, v, w, z)
        return sigma

    @staticmethod
    def backward(ctx, grad):  # grad [N_i, N_j]
        u, v, w, z = ctx.saved_tensors
        # grad A_i = sum_j g_ij u_ij z_ij^T: [N_i, K, N_j] @ [N_i, N_j, D]
        grad_a = torch.bmm((u * grad[:, :, None]).transpose(1, 2), z)
        # grad B_j = sum_i g_ij v_ij w_ij^T: [N_j, T, N_i] @ [N_j, N_i, D]
        grad_b = torch.bmm((v * grad.T[:, :, None]).transpose(1, 2), w.transpose(0, 1))
        return grad_a, grad_b, None


def pair_top_sigma(
    a: torch.Tensor,
    b: torch.Tensor,
    b_mask: torch.Tensor,
    tol: float = PAIR_TOL,
    max_iters: int = PAIR_MAX_ITERS,
) -> torch.Tensor:
    """sigma_1(A_i B_j^T) for every pair, differentiable in a and b: [N_i, N_j] float32.

    a [N_i, K, D], b [N_j, T, D] with excluded text rows already zero; b_mask [N_j, T].
    Autocast off inside: the evaluation and the backward are float32 by design.
    """
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        u, _ = pair_directions(a.detach(), b.detach(), b_mask, tol, max_iters)
        return _PairSigma1.apply(a, b, u.contiguous())


def sampled_rel_error(
    a: torch.Tensor, b: torch.Tensor, sigma: torch.Tensor, samples: int = 16
) -> torch.Tensor:
    """Largest relative error of `sigma` [N_i, N_j] (from `pair_top_sigma`) against
    `torch.linalg.svdvals` on a fixed sample of pairs: the first `samples` positives (i, i)
    and as many negatives (i, i + 1). No RNG (a resumed run draws the same masks); ~1 ms.
    """
    with torch.no_grad(), torch.autocast(a.device.type, enabled=False):
        n = min(a.shape[0], b.shape[0], samples)
        i = torch.arange(n, device=a.device).repeat(2)
        j = torch.cat([i[:n], (i[:n] + 1) % b.shape[0]])
        mats = torch.bmm(a[i].float(), b[j].float().transpose(1, 2))  # [2n, K, T]
        ref = torch.linalg.svdvals(mats)[:, 0]
        ours = sigma.detach()[i, j].float()
        return ((ours - ref).abs() / ref.clamp_min(1e-12)).max()


def top_singular_vectors(
    mat: torch.Tensor, iters: int = DENSE_ITERS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading left/right singular vectors of a batch of matrices, without gradient.

    mat [..., m, n] -> (u [..., m], v [..., n]), unit vectors with u^T mat v = sigma_1 >= 0.
    Power iteration on the smaller Gram matrix G = mat mat^T (or mat^T mat) [..., s, s],
    warm-started from G's largest-norm column (never orthogonal to the top eigenvector
    unless G's range is); all-zero matrices give zero vectors (sigma_1 = 0).
    """
    with torch.no_grad():
        mat = mat.float()
        tall = mat.shape[-2] > mat.shape[-1]
        work = mat.transpose(-1, -2) if tall else mat  # [..., s, l], s <= l
        gram = work @ work.transpose(-1, -2)  # [..., s, s]
        col = gram.norm(dim=-2).argmax(dim=-1)  # [...]
        x = gram.gather(-1, col[..., None, None].expand(*gram.shape[:-1], 1))[..., 0]  # [..., s]
        for _ in range(iters):
            x = F.normalize(x, dim=-1)
            x = (gram @ x[..., None])[..., 0]
        x = F.normalize(x, dim=-1)  # [..., s]
        y = F.normalize((x[..., None, :] @ work)[..., 0, :], dim=-1)  # [..., l]
    return (y, x) if tall else (x, y)


def sigma1(mat: torch.Tensor, iters: int = DENSE_ITERS) -> torch.Tensor:
    """Largest singular value of each matrix in mat [..., m, n] -> [...], differentiable."""
    with torch.autocast(mat.device.type, enabled=False):
        mat = mat.float()
        u, v = top_singular_vectors(mat, iters)
        return (u[..., None, :] @ mat @ v[..., :, None])[..., 0, 0]


__all__ = [
    "DENSE_ITERS",
    "PAIR_MAX_ITERS",
    "PAIR_TOL",
    "pair_directions",
    "pair_top_sigma",
    "sampled_rel_error",
    "sigma1",
    "top_singular_vectors",
]
