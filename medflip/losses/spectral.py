"""Top singular values by power iteration: sigma_1 of every image-text token-similarity
matrix (the pair SVD term, eq. 6) and of single dense matrices (the spectral form).

Pairs. S_ij = A_i B_j^T [K, T] for image i's K visible tokens A_i [K, D] and text j's T
tokens B_j [T, D]. Forming all N_i N_j of them costs K T D multiply-adds a pair (at the
demo's K=16, T=68, D=128 that one GEMM alone is ~7 % of a training step here); a power
step u -> v = S^T u -> S v costs 2 (K + T) D, as four batched matmuls over all pairs, so a
few steps are cheaper -- and a few suffice where the tokens share a dominant direction
(trained and freshly initialised towers alike: benchmarks/svd.py). Pairs whose sigma_1 has
not settled after `max_iters` steps (near-isotropic tokens, sigma_2 close to sigma_1) are
solved exactly instead: their S_ij and K x K Gram matrix are formed and its top eigenvector
found by repeated squaring (`_top_eigvec`), so the error is bounded for every pair and the
extra cost is paid only by the pairs that need it. All float32: the stopping test compares
changes of sigma near 1e-5, below bf16's rounding.

Stopping: a pair stops when a proven bound on its error is below `tol` (`_error_bound`:
Kato-Temple, with sigma_2 bounded through ||S_ij||_F, one GEMM for all pairs). A rule on
how much sigma still rises is not enough: from a start nearly orthogonal to the top
direction, sigma first plateaus near sigma_2 (near-isotropic tokens: 7e-2 off after 8
steps with such a rule). The bound certifies only pairs whose sigma_1^2 is over half of
||S_ij||_F^2: all pairs of benchmarks/svd.py's model tokens (>= 70 %) and of its step
model after a few training steps, but most pairs of two other fresh demo inits (median
45-54 %: those go exact, ~0.7 s for a batch of 128) and none of isotropic ones (<= 15 %).

Gradient: at convergence d sigma_1 = u^T dS v (envelope theorem), which stays finite when
sigma_1 is repeated, where `torch.linalg.svdvals`' backward divides by sigma_i - sigma_j.
The custom backward uses it directly: grad A_i = sum_j g_ij u_ij (B_j^T v_ij)^T and
grad B_j = sum_i g_ij v_ij (A_i^T u_ij)^T; sigma = u^T S v = |S v| comes from the last
power step itself (u = S v / |S v|), so no separate evaluation runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Power steps (u -> S^T u -> S v) at most before the pairs still unsettled are solved
# exactly (sooner once that is the cheaper way: `pair_singular_vectors`).
PAIR_MAX_ITERS = 4
# Proven bound on sigma_1's relative error (`_error_bound`) at which a pair stops iterating
# (the goal is 1e-3; the rest is room for float32 rounding in the bound's terms, ~1e-5).
PAIR_TOL = 8e-4
# Squarings of a K x K Gram matrix in the exact path: G^(2^12), i.e. 4096 power steps.
EXACT_SQUARINGS = 12
_EXACT_CHUNK = 1024  # pairs per exact batch: its gathered B_j are [1024, T, D]
DENSE_ITERS = 30  # single dense matrices (spectral form): cheap, so iterate to convergence


def _unit_last(x: torch.Tensor) -> torch.Tensor:
    """x / |x| along the last dim; zero stays zero."""
    return x * x.square().sum(-1, keepdim=True).clamp_min(1e-30).rsqrt()


def _start(a: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor):
    """S_ij v0_j for v0_j text j's uniform unit vector over its real tokens: one GEMM (all
    image tokens x all texts), since v0 does not depend on i; in the tokens' shared
    direction, when they have one. -> (|S v0| [N_i, N_j], unit u [N_i, N_j, K])."""
    n_i, k, d = a.shape
    v0 = b_mask.float() * b_mask.sum(1, keepdim=True).clamp_min(1).float().rsqrt()  # [N_j, T]
    c = torch.bmm(v0[:, None, :], b)[:, 0]  # [N_j, D] = B_j^T v0_j
    s = (a.reshape(n_i * k, d) @ c.T).view(n_i, k, -1).transpose(1, 2).contiguous()  # [N_i, N_j, K]
    norm = s.norm(dim=-1)
    return norm, _unit_last(_unit_last(s) + 1e-6)  # + eps: never an exact zero start


def _step_buffers(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """w [N_i, N_j, D], v [N_j, N_i, T], z [N_j, N_i, D], s [N_i, N_j, K] for `_power_step`,
    allocated once: fresh multi-MB tensors every step cost ~1/3 of a step in page faults."""
    (n_i, k, d), (n_j, t) = a.shape, b.shape[:2]
    new = a.new_empty
    return new(n_i, n_j, d), new(n_j, n_i, t), new(n_j, n_i, d), new(n_i, n_j, k)


def _power_step(u: torch.Tensor, a: torch.Tensor, b: torch.Tensor, out) -> torch.Tensor:
    """One power step on every pair from unit u [N_i, N_j, K], into `out` = (w, v, z, s)
    (`_step_buffers`): v = S^T u / |S^T u|, z = B_j^T v and s = S v, as four batched
    matmuls (i-major on the image side, j-major on the text side; the transposes are
    strided views). -> |S^T u| [N_i, N_j]; |s| = u'^T S v for u' = s / |s|."""
    w, v, z, s = out
    torch.bmm(u, a, out=w)  # [N_i, N_j, D] = A_i^T u
    torch.bmm(w.transpose(0, 1), b.transpose(1, 2), out=v)  # [N_j, N_i, T] = S^T u
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)  # [N_j, N_i, 1]
    v.div_(norm.clamp_min(1e-30))
    torch.bmm(v, b, out=z)  # [N_j, N_i, D] = B_j^T v
    torch.bmm(z.transpose(0, 1), a.transpose(1, 2), out=s)  # [N_i, N_j, K] = S v
    return norm[..., 0].T


def _frobenius_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||S_ij||_F^2 = <A_i^T A_i, B_j^T B_j> for every pair [N_i, N_j]: one GEMM over the
    D x D Gram matrices (D^2 a pair, ~1/8 of forming S_ij at the demo's shapes)."""
    d = a.shape[-1]
    row, col = torch.triu_indices(d, d, device=a.device)  # both are symmetric: half of D^2,
    weight = 2.0 - (row == col).float()  # off-diagonal entries counted twice
    flat = row * d + col
    p = torch.bmm(a.transpose(1, 2), a).flatten(1).index_select(1, flat) * weight
    q = torch.bmm(b.transpose(1, 2), b).flatten(1).index_select(1, flat)
    return p @ q.T  # [N_i, D (D + 1) / 2] @ [D (D + 1) / 2, N_j]


def _error_bound(n_a: torch.Tensor, n_b: torch.Tensor, fro_sq: torch.Tensor) -> torch.Tensor:
    """Upper bound on sigma_1's relative error after a power step u -> v -> s (Kato-Temple
    on G = S S^T): rho = |S^T u|^2 = n_a^2 is u's Rayleigh value, |G u - rho u|^2 =
    rho (n_b^2 - rho), and lambda_2 <= ||S||_F^2 - lambda_1 <= F - rho, so where 2 rho > F,
    lambda_1 - rho <= rho (n_b^2 - rho) / (2 rho - F) and sigma_1 - n_a <= that / (2 n_a).
    inf where 2 rho <= F (no certificate: sigma_2 may be close to sigma_1)."""
    rho = n_a.square()
    margin = 2 * rho - fro_sq
    bound = (n_b.square() - rho) / (2 * margin).clamp_min(1e-30)
    return torch.where(margin > 0, bound, torch.inf)


def _top_eigvec(g: torch.Tensor, squarings: int = EXACT_SQUARINGS) -> torch.Tensor:
    """Top eigenvector of PSD matrices g [M, K, K] -> [M, K] unit: g^(2^s) scaled to trace
    1 by repeated squaring (2^s power steps in s matmuls) is ~ x x^T; its largest column,
    normalised, is x, then two plain power steps on g polish it. Zero g gives zero."""

    def scaled(p):
        return p / p.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-30)[:, None, None]

    p = scaled(g)
    for _ in range(squarings):
        p = scaled(torch.bmm(p, p))
    col = p.norm(dim=-2).argmax(dim=-1)  # [M]
    x = _unit_last(p[torch.arange(p.shape[0]), :, col])  # [M, K]
    for _ in range(2):
        x = _unit_last(torch.bmm(g, x[:, :, None])[..., 0])
    return x


def _solve_exactly(a, b, ii, jj, v, z, s) -> None:
    """For pairs (ii, jj) [M]: form S_ij and its Gram matrix, take the exact top left
    singular vector and write its power step's v, z, s (as `_power_step` gives) in place."""
    for c in range(0, ii.numel(), _EXACT_CHUNK):
        i, j = ii[c : c + _EXACT_CHUNK], jj[c : c + _EXACT_CHUNK]
        bj = b[j]  # [m, T, D]
        mats = torch.bmm(a[i], bj.transpose(1, 2))  # [m, K, T]
        u = _top_eigvec(torch.bmm(mats, mats.transpose(1, 2)))  # [m, K]
        vm = _unit_last(torch.bmm(u[:, None, :], mats)[:, 0])  # [m, T]
        v[j, i], z[j, i] = vm, torch.bmm(vm[:, None, :], bj)[:, 0]
        s[i, j] = torch.bmm(mats, vm[:, :, None])[..., 0]


def pair_singular_vectors(
    a: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor, tol: float, max_iters: int
):
    """Leading singular pairs of every S_ij = A_i B_j^T, without gradient.

    a [N_i, K, D], b [N_j, T, D] (excluded rows zero, float32), b_mask [N_j, T] ->
    (sigma [N_i, N_j], u [N_i, N_j, K], v [N_j, N_i, T], z = B_j^T v [N_j, N_i, D],
    info {"steps", "exact_pairs"}), with sigma = u^T S v = |S v| and u = S v / sigma.
    """
    (k, d), t = a.shape[1:], b.shape[1]
    # multiply-adds a pair: a power step, an exact solve -- whose gather and small batched
    # matmuls run ~4x slower a multiply-add here (~40 us a demo pair vs ~1 us a step)
    step_cost = 2 * (k + t) * d
    exact_cost = 4 * (k * t * d + k * k * t + EXACT_SQUARINGS * k**3)
    with torch.no_grad():
        fro_sq = _frobenius_sq(a, b)  # [N_i, N_j]
        _, u = _start(a, b, b_mask)
        bufs = _step_buffers(a, b)
        _, v, z, s = bufs
        steps = 0
        while True:
            steps += 1
            n_a = _power_step(u, a, b, bufs)
            n_b = torch.linalg.vector_norm(s, dim=-1)  # [N_i, N_j] = |S v|
            u = s / n_b.clamp_min(1e-30)[..., None]
            done = _error_bound(n_a, n_b, fro_sq) <= tol
            # stop stepping all pairs once solving the unsettled ones exactly is cheaper
            if steps >= max_iters or int((~done).sum()) * exact_cost <= done.numel() * step_cost:
                break
        ii, jj = (~done).nonzero(as_tuple=True)
        if ii.numel():
            _solve_exactly(a, b, ii, jj, v, z, s)
        sigma = s.norm(dim=-1)
        info = {"steps": steps, "exact_pairs": int(ii.numel())}
        return sigma, _unit_last(s), v, z, info


class _PairSigma1(torch.autograd.Function):
    """sigma_1 of every S_ij given its singular pair (u, v); envelope-theorem backward."""

    @staticmethod
    def forward(ctx, a, b, sigma, u, v, z):  # a [N_i, K, D], b [N_j, T, D]; see above
        ctx.save_for_backward(a, u, v, z)
        return sigma.clone()

    @staticmethod
    def backward(ctx, grad):  # grad [N_i, N_j]
        a, u, v, z = ctx.saved_tensors
        gu = u * grad[:, :, None]  # [N_i, N_j, K]
        # grad A_i = sum_j g_ij u_ij z_ij^T: [N_i, K, N_j] @ [N_i, N_j, D]
        grad_a = torch.bmm(gu.transpose(1, 2), z.transpose(0, 1))
        # grad B_j = sum_i g_ij v_ij w_ij^T, w_ij = A_i^T u_ij: [N_j, T, N_i] @ [N_j, N_i, D]
        w = torch.bmm(gu, a).transpose(0, 1)  # g_ij w_ij, [N_j, N_i, D]
        grad_b = torch.bmm(v.transpose(1, 2), w)
        return grad_a, grad_b, None, None, None, None


def pair_top_sigma(
    a: torch.Tensor,
    b: torch.Tensor,
    b_mask: torch.Tensor,
    tol: float = PAIR_TOL,
    max_iters: int = PAIR_MAX_ITERS,
    info: dict | None = None,
) -> torch.Tensor:
    """sigma_1(A_i B_j^T) for every pair, differentiable in a and b: [N_i, N_j] float32.

    a [N_i, K, D], b [N_j, T, D] with excluded text rows already zero; b_mask [N_j, T].
    Autocast off inside: all float32 by design. `info`, if given, receives the steps
    taken and the number of pairs solved exactly.
    """
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        sigma, u, v, z, got = pair_singular_vectors(a.detach(), b.detach(), b_mask, tol, max_iters)
        if info is not None:
            info.update(got)
        return _PairSigma1.apply(a, b, sigma, u, v, z)


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
    "EXACT_SQUARINGS",
    "pair_singular_vectors",
    "pair_top_sigma",
    "sampled_rel_error",
    "sigma1",
    "top_singular_vectors",
]
