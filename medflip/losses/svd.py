"""The SVD term of MedFLIP (eq. 6): softmax over top singular values of similarity matrices.

sigma_1 comes from power iteration run without gradient, as u^T S v for its singular pair
(u, v). At convergence that *is* sigma_1, and its gradient u v^T is the exact derivative
of a simple sigma_1 (envelope theorem) -- while staying finite when sigma_1 is repeated,
where `torch.linalg.svdvals`' backward divides by sigma_i - sigma_j and blows up.
The iterations (float32 power steps, pairs that do not settle solved exactly, a custom
backward) are in medflip.losses.spectral.

Cost (benchmarks/svd.py): N^2 2 (K + T) D multiply-adds per power step for the pair form
(N^2 K T D for a pair solved exactly) -- the token-level term is inherently quadratic in
the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The power iterations live in medflip.losses.spectral (re-exported here for existing callers).
from medflip.losses.spectral import (
    DENSE_ITERS,
    PAIR_MAX_ITERS,
    PAIR_TOL,
    pair_top_sigma,
    sampled_rel_error,
    sigma1,
    top_singular_vectors,
)


def _symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the diagonal, over rows and over columns, averaged. logits [N, N]."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pair_sigma1(
    image_tokens: torch.Tensor,  # [N, K, D]
    text_tokens: torch.Tensor,  # [N, T, D]
    text_token_mask: torch.Tensor,  # [N, T] bool, True = real token
    iters: int = PAIR_MAX_ITERS,
    tol: float = PAIR_TOL,
) -> torch.Tensor:
    """sigma_1 of every image-text token-similarity matrix, normalised: [N_img, N_txt].

    S_ij = A_i B_j^T [K, T] with L2-normalised tokens (excluded text tokens zeroed). Each
    entry of S_ij is a cosine, so ||S_ij||_2 <= sqrt(K T_j); dividing by that puts the
    score in [0, 1] like a cosine and keeps it comparable across mask ratios (K) and text
    lengths (T_j) -- otherwise the image mask ratio would silently rescale beta.
    """
    a, b = _unit_tokens(image_tokens, text_tokens, text_token_mask)
    sigma = pair_top_sigma(a, b, text_token_mask, tol, iters)  # [N_i, N_j]
    return _scaled(sigma, a.shape[1], text_token_mask)


def _unit_tokens(image_tokens, text_tokens, text_token_mask):
    """L2-normalised float32 tokens, excluded text tokens zeroed: [N, K, D], [N, T, D]."""
    a = F.normalize(image_tokens.float(), dim=-1)
    b = F.normalize(text_tokens.float(), dim=-1) * text_token_mask[:, :, None]
    return a, b


def _scaled(sigma: torch.Tensor, k: int, text_token_mask: torch.Tensor) -> torch.Tensor:
    """sigma [N_i, N_j] / sqrt(K T_j): the score in [0, 1] (see `pair_sigma1`)."""
    lengths = text_token_mask.sum(dim=1).clamp_min(1).float()  # [N_j]
    return sigma / (k * lengths[None, :]).sqrt()


def svd_pair_loss(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_token_mask: torch.Tensor,
    temperature: torch.Tensor | float,
    with_error: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6 at token level: -log softmax_j(sigma_1(i, j) / tau) at j = i, both directions.

    sigma_1(i, j) is the (normalised, see `pair_sigma1`) top singular value of the
    similarity between image i's visible patch tokens and text j's tokens. The positive
    pair's sigma_1 is pushed up against the other pairs in the batch, over texts for each
    image and over images for each text; the two cross-entropies are averaged.
    """
    with torch.autocast(image_tokens.device.type, enabled=False):
        a, b = _unit_tokens(image_tokens, text_tokens, text_token_mask)
        sigma = pair_top_sigma(a, b, text_token_mask)  # [N, N]
        loss = _symmetric_ce(_scaled(sigma, a.shape[1], text_token_mask) / temperature)
        if not with_error:
            return loss
        # sigma_1's relative error on a fixed sample of pairs (a metric: svd_sigma_rel_err),
        # of sigma itself: the scores are scaled, svdvals' reference is not
        return loss, sampled_rel_error(a.detach(), b.detach(), sigma)


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
    "PAIR_MAX_ITERS",
    "PAIR_TOL",
    "pair_sigma1",
    "sigma1",
    "sigma1_reference",
    "svd_pair_loss",
    "svd_spectral_loss",
    "top_singular_vectors",
]
