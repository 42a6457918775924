"""The SVD term of MedFLIP (eq. 6): softmax over top singular values of similarity matrices.

sigma_1 comes from power iteration run without gradient, then re-evaluated as u^T S v with
gradient. At convergence that *is* sigma_1, and its gradient u v^T is the exact derivative
of a simple sigma_1 (envelope theorem) -- while staying finite when sigma_1 is repeated,
where `torch.linalg.svdvals`' backward divides by sigma_i - sigma_j and blows up.
Everything here is float32 with autocast off: bf16 would put ~4e-3 relative error on
every sigma_1 (and, on CPU, its strided batched matmuls were slower, not faster).

Cost (benchmarks/svd.py): N^2 (K + T) D multiply-adds per half-step for the pair form --
the token-level term is inherently quadratic in the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Steps after the warm start. Demo model at init (benchmarks/svd.py): sigma_1 relative error
# p99 1.3e-4, max 1.3e-3 with 1 step (0: 9.5e-3 / 2.7e-2; 2: 2e-6 / 7e-5); each step adds
# ~1/3 of the term's cost.
PAIR_ITERS = 1
DENSE_ITERS = 30  # for single dense matrices (spectral form): cheap, so iterate to convergence


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


def _unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x / ||x|| along `dim`; zero stays zero. A sum of squares is ~15x faster than
    F.normalize's vector_norm when `dim` is not the innermost one (CPU)."""
    return x * x.square().sum(dim, keepdim=True).clamp_min(1e-30).rsqrt()


def pair_singular_vectors(
    a: torch.Tensor,
    b: torch.Tensor,
    b_mask: torch.Tensor,
    iters: int = PAIR_ITERS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading singular vectors of S_ij = A_i B_j^T for every pair, without forming S_ij.

    a [N_i, K, D], b [N_j, T, D] (excluded rows zero), b_mask [N_j, T] -> u [N_i, K, N_j]
    (unit), v [N_j, T, N_i] (NOT normalised: that pass over the largest tensor is skipped)
    and v_norm [N_i, N_j] -- the layouts the batched matmuls produce.
    Factored power iteration (S v = A_i (B_j^T v), S^T u = B_j (A_i^T u)): (K + T) D per pair
    and step instead of the K T D that forming S_ij costs; every step is one bmm. Warm start
    v = mean over text tokens: the first half-step is then one GEMM (all image tokens x all
    mean text tokens), and u^T S v there is already the mean-token similarity, which sigma_1
    refines. Float32 throughout: bf16 bmm on strided operands copies batch by batch on CPU
    and came out slower.
    """
    with torch.no_grad():
        a, b = a.float(), b.float()
        n_i, k, d = a.shape
        v0 = b_mask.float() / b_mask.sum(dim=1, keepdim=True).clamp_min(1).float().sqrt()
        mean_b = torch.einsum("jt,jtd->jd", v0, b)  # [N_j, D]
        u = (a.reshape(n_i * k, d) @ mean_b.T).view(n_i, k, -1)  # [N_i, K, N_j] = S_ij v0
        u = _unit(u, 1) + 1e-6  # + eps: never start from an exact zero vector
        for step in range(iters + 1):
            w = torch.bmm(u.transpose(1, 2), a)  # [N_i, N_j, D] = A_i^T u_ij
            v = torch.bmm(b, w.permute(1, 2, 0))  # [N_j, T, N_i] = B_j A_i^T u_ij
            if step == iters:
                break
            z = torch.bmm(v.transpose(1, 2), b)  # [N_j, N_i, D] = B_j^T v_ij
            u = _unit(torch.bmm(a, z.permute(1, 2, 0)), 1)  # [N_i, K, N_j] = S v, unit
        v_norm = v.square().sum(dim=1).sqrt().T  # [N_i, N_j]
    return _unit(u, 1), v, v_norm


def sigma1(mat: torch.Tensor, iters: int = DENSE_ITERS) -> torch.Tensor:
    """Largest singular value of each matrix in mat [..., m, n] -> [...], differentiable."""
    with torch.autocast(mat.device.type, enabled=False):
        mat = mat.float()
        u, v = top_singular_vectors(mat, iters)
        return (u[..., None, :] @ mat @ v[..., :, None])[..., 0, 0]


def _symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the diagonal, over rows and over columns, averaged. logits [N, N]."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pair_sigma1(
    image_tokens: torch.Tensor,  # [N, K, D]
    text_tokens: torch.Tensor,  # [N, T, D]
    text_token_mask: torch.Tensor,  # [N, T] bool, True = real token
    iters: int = PAIR_ITERS,
) -> torch.Tensor:
    """sigma_1 of every image-text token-similarity matrix, normalised: [N_img, N_txt].

    S_ij = A_i B_j^T [K, T] with L2-normalised tokens (excluded text tokens zeroed). Each
    entry of S_ij is a cosine, so ||S_ij||_2 <= sqrt(K T_j); dividing by that puts the
    score in [0, 1] like a cosine and keeps it comparable across mask ratios (K) and text
    lengths (T_j) -- otherwise the image mask ratio would silently rescale beta.
    """
    a = F.normalize(image_tokens.float(), dim=-1)  # [N, K, D]
    b = F.normalize(text_tokens.float(), dim=-1) * text_token_mask[:, :, None]  # [N, T, D]
    u, v, v_norm = pair_singular_vectors(a.detach(), b.detach(), text_token_mask, iters)
    # With gradient: sigma_ij = u_ij^T A_i (B_j^T v_ij) / ||v_ij||, never forming S_ij.
    z = torch.bmm(v.transpose(1, 2), b)  # [N_j, N_i, D] = B_j^T v_ij
    su = torch.bmm(a, z.permute(1, 2, 0))  # [N_i, K, N_j] = S_ij v_ij
    lengths = text_token_mask.sum(dim=1).clamp_min(1).float()  # [N_j]
    scale = v_norm.clamp_min(1e-30) * (a.shape[1] * lengths[None, :]).sqrt()  # [N_i, N_j]
    return (su * u).sum(dim=1) / scale


def svd_pair_loss(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_token_mask: torch.Tensor,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Eq. 6 at token level: -log softmax_j(sigma_1(i, j) / tau) at j = i, both directions.

    sigma_1(i, j) is the (normalised, see `pair_sigma1`) top singular value of the
    similarity between image i's visible patch tokens and text j's tokens. The positive
    pair's sigma_1 is pushed up against the other pairs in the batch, over texts for each
    image and over images for each text; the two cross-entropies are averaged.
    """
    with torch.autocast(image_tokens.device.type, enabled=False):
        scores = pair_sigma1(image_tokens, text_tokens, text_token_mask)  # [N, N]
        return _symmetric_ce(scores / temperature)


def svd_spectral_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: torch.Tensor | float
) -> torch.Tensor:
    """Eq. 6 on the batch similarity matrix S = V T^T [N, N] (pooled embeddings).

    S splits into the positive pairs (its diagonal) and the negatives (S with the diagonal
    zeroed, S_off). Scores in [0, 1]: the positives' mean cosine, tr(S) / N, and the
    negatives' strongest linear correlation, sigma_1(S_off) / (N - 1) (1 when every
    negative pair has cosine 1, i.e. collapse). Loss = -log softmax([pos, neg] / tau)[pos]
    = softplus((neg - pos) / tau): positives up, the negatives' top singular value down.
    Symmetric in the modalities (S^T has the same trace and singular values).
    """
    with torch.autocast(image_emb.device.type, enabled=False):
        v = F.normalize(image_emb.float(), dim=-1)
        t = F.normalize(text_emb.float(), dim=-1)
        sims = v @ t.T  # [N, N]
        n = sims.shape[0]
        pos = sims.diagonal().mean()
        off = sims * (1 - torch.eye(n, device=sims.device, dtype=sims.dtype))
        neg = sigma1(off) / max(n - 1, 1)
        return F.softplus((neg - pos) / temperature)


def sigma1_reference(mat: torch.Tensor) -> torch.Tensor:
    """torch.linalg.svdvals' sigma_1 (for tests and benchmarks)."""
    return torch.linalg.svdvals(mat.float())[..., 0]


__all__ = [
    "DENSE_ITERS",
    "PAIR_ITERS",
    "pair_singular_vectors",
    "pair_sigma1",
    "sigma1",
    "sigma1_reference",
    "svd_pair_loss",
    "svd_spectral_loss",
    "top_singular_vectors",
]
