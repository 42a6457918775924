"""MedFLIP's losses: contrastive (CLIP InfoNCE, MedCLIP soft targets eq. 1-5, MedFLIP eq. 7),
the SVD term (eq. 6, in `medflip.losses.svd`), MLM (eq. 8) and masked-image reconstruction
(eq. 9). Pure functions over embeddings and labels, plus `MedFLIPLoss`, which combines them
as the config asks.

Every function computes in float32 with autocast off: softmaxes over a batch at tau = 0.01
overflow bf16's range of useful precision, and these are tiny next to the towers.

At world size > 1 `MedFLIPLoss` gathers the embeddings, token tensors and labels of every
rank (`medflip.losses.rows`, open_clip's gather-with-gradient pattern), so the contrastive
and SVD terms are the global batch's; MLM and MIM stay per sample on each rank. Rows
without an image (text-only reports) enter only the label-matched kinds
(`LossKind.label_matched` in `medflip.registry.LOSS_KINDS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from medflip.losses import rows as losses_rows
from medflip.losses.svd import sigma1, svd_pair_loss, svd_spectral_loss
from medflip.registry import LOSS_KINDS

if TYPE_CHECKING:
    from medflip.config import Config

UNCERTAIN_WEIGHT = 0.5  # an "uncertain" finding counts half a positive in the label vector


def label_targets(coded: torch.Tensor) -> torch.Tensor:
    """CheXpert-coded labels [N, 14] (1 pos, 0 neg, -1 uncertain, NaN blank) -> vectors >= 0.

    positive -> 1, uncertain -> 0.5 (the report hedges: half the evidence of a positive),
    negative and blank -> 0 (eq. 1's cosine only rewards shared findings; "No Finding" is
    itself one of the 14, so normal studies still share a non-zero vector).
    """
    coded = coded.float()
    out = torch.where(coded == 1, 1.0, 0.0)
    return torch.where(coded == -1, UNCERTAIN_WEIGHT, out).to(coded)


def _logits(image_emb, text_emb, temperature) -> torch.Tensor:
    """Cosine similarity / tau, [N_img, N_txt], float32."""
    v = F.normalize(image_emb.float(), dim=-1)
    t = F.normalize(text_emb.float(), dim=-1)
    return v @ t.T / temperature


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: torch.Tensor | float
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): mean of image->text and text->image cross-entropy at the
    diagonal, each a mean over the batch. Same number as open_clip's ClipLoss with
    logit_scale = 1 / tau."""
    with torch.autocast(image_emb.device.type, enabled=False):
        logits = _logits(image_emb, text_emb, temperature)  # [N, N]
        target = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def soft_targets(image_labels: torch.Tensor, text_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 1-2: row-wise softmax of the label vectors' cosine similarity, [N_img, N_txt].

    A zero label vector normalises to zero, so its cosine with everything is 0 (no NaN).
    """
    a = F.normalize(image_labels.float(), dim=-1)
    b = F.normalize(text_labels.float(), dim=-1)
    return (a @ b.T).softmax(dim=1)


def medclip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    image_labels: torch.Tensor,
    text_labels: torch.Tensor,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Eq. 1-5 (MedCLIP's semantic matching loss).

    Soft targets y^{v->t} = softmax_j(cos(l_img_i, l_txt_j)) and y^{t->v} = softmax_i of the
    same cosines; predictions = softmax of image-text cosine / tau over the same axis.
    Loss = mean over both directions of the batch-mean soft cross-entropy. Label args are
    numeric vectors >= 0 (see `label_targets`).
    """
    with torch.autocast(image_emb.device.type, enabled=False):
        logits = _logits(image_emb, text_emb, temperature)  # [N_img, N_txt]
        i2t = soft_targets(image_labels, text_labels)  # rows: image i over texts j
        t2i = soft_targets(text_labels, image_labels)  # rows: text j over images i
        loss_i2t = -(i2t * logits.log_softmax(dim=1)).sum(dim=1).mean()
        loss_t2i = -(t2i * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
        return (loss_i2t + loss_t2i) / 2


def _eq7_rows(logits: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 7's contrastive part with the softmax over each row, divided by N."""
    n = logits.shape[0]
    log_p = logits.log_softmax(dim=1)  # [N, N]
    positives = log_p.diagonal().sum()
    off = ~torch.eye(n, dtype=torch.bool, device=logits.device)
    # log(1 - p): clamp p below 1 so a saturated negative costs log(eps), not -inf
    negatives = torch.log1p(-log_p.exp().clamp(max=1 - eps))[off].sum()
    return -(positives + negatives) / n


def medflip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: torch.Tensor | float
) -> torch.Tensor:
    """Eq. 7 without beta * L_SVD: -sum_i log y_ii - sum_{j != i} log(1 - y_ij), over N.

    Sign corrected: the paper prints `+ sum log(1 - y_ij)`; minimised as written that term
    pushes the negatives' probabilities *up* (log(1 - y) -> -inf as y -> 1). We implement
    `- sum log(1 - y_ij)`, a binary cross-entropy on every negative pair.
    y_ij is eq. 5's softmax of cosine / tau; eq. 5 normalises over images i for each text,
    which is one direction. We average it with the other (over texts for each image), as
    CLIP and MedCLIP do, so the loss is symmetric in the modalities. Normalised by N so its
    scale does not grow with the batch (like clip_loss, which eq. 7's first term equals
    when the second is dropped).
    """
    with torch.autocast(image_emb.device.type, enabled=False):
        logits = _logits(image_emb, text_emb, temperature)  # [N_img, N_txt]
        return (_eq7_rows(logits.T) + _eq7_rows(logits)) / 2


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 8 as a mean: cross-entropy over tokens whose label is not -100.

    logits [..., V], labels [...]; 0 (still attached to the graph) when nothing is masked.
    """
    labels = labels.reshape(-1)
    logits = logits.reshape(labels.shape[0], -1).float()
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=-100)


def mim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 9 as MSE (MAE): mean squared error per patch, averaged over masked patches only.

    pred, target [N, L, P]; mask [N, L] with 1 = masked (predicted), 0 = visible (ignored).
    Reading eq. 9's -log P(I_r | I_\\r) as a unit-variance Gaussian likelihood gives this MSE
    up to constants. 0 when no patch is masked.
    """
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)  # [N, L]
    mask = mask.float()
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


# The terms `medflip.registry.LOSS_KINDS` names: fn(rows, tau) -> scalar.


def clip_term(p: dict, tau: torch.Tensor) -> torch.Tensor:
    return clip_loss(p["image_emb"], p["text_emb"], tau)


def medclip_term(p: dict, tau: torch.Tensor) -> torch.Tensor:
    if p.get("image_labels") is None or p.get("labels") is None:
        raise KeyError("loss.kind=medclip needs batch['image_labels'] and batch['labels']")
    image_labels, text_labels = label_targets(p["image_labels"]), label_targets(p["labels"])
    return medclip_loss(p["image_emb"], p["text_emb"], image_labels, text_labels, tau)


def medflip_term(p: dict, tau: torch.Tensor) -> torch.Tensor:
    return medflip_loss(p["image_emb"], p["text_emb"], tau)


class MedFLIPLoss(nn.Module):
    """total = contrastive + beta * SVD + mlm_weight * MLM + mim_weight * MIM.

    Each part enters only when active: SVD when loss.svd_weight > 0, MLM when the model
    returned `mlm_logits`, MIM when it returned `mim_pred`. Inactive parts are reported as 0.
    Contrastive and SVD are the global batch's (every rank computes the same value); MLM
    and MIM are this rank's.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        kind = LOSS_KINDS[cfg.loss.kind]
        self.kind, self.label_matched = kind.name, kind.label_matched
        self._contrastive = kind.load()
        self.svd_weight = cfg.loss.svd_weight
        self.svd_form = cfg.loss.svd_form
        self.mlm_weight = cfg.loss.mlm_weight
        self.mim_weight = cfg.loss.mim_weight

    def contrastive(self, p: dict, tau: torch.Tensor) -> torch.Tensor:
        return self._contrastive(p, tau)

    def svd(self, p: dict, tau: torch.Tensor) -> torch.Tensor:
        if self.svd_form == "spectral":
            return svd_spectral_loss(p["image_emb"], p["text_emb"], tau)
        if "image_tokens" not in p:
            raise KeyError(
                "loss.svd_form=pair needs the model's image_tokens/text_tokens "
                "(MedFLIP.return_tokens, on when built with loss.svd_weight > 0)"
            )
        return svd_pair_loss(
            p["image_tokens"], p["text_tokens"], p["text_token_mask"], tau, with_error=True
        )

    def forward(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Model outputs + batch -> {loss, loss_contrastive, loss_svd, loss_mlm, loss_mim}."""
        tau = outputs["temperature"]
        rows = losses_rows.global_batch(outputs, batch)
        p = losses_rows.pairs(rows)
        # MedCLIP's decoupling: a kind whose targets come from label vectors also learns
        # from unpaired rows and from texts without an image (every image row vs every text
        # row, each with its own labels); the identity-target kinds: pairs only.
        c = losses_rows.label_matched(rows) if self.label_matched else p
        # A 0 touching the embeddings and tau: a batch without pairs still gives every
        # parameter a gradient (DDP waits for all of them).
        zero = (outputs["image_emb"].sum() + outputs["text_emb"].sum() + tau).float() * 0.0
        has_pairs = p["image_emb"].shape[0] > 0
        parts = {
            "loss_contrastive": self.contrastive(c, tau) if c["image_emb"].shape[0] else zero,
            "loss_svd": self.svd(p, tau) if has_pairs and self.svd_weight > 0 else zero,
            "loss_mlm": zero,
            "loss_mim": zero,
        }
        if isinstance(parts["loss_svd"], tuple):  # pair form: sigma_1's sampled error too
            parts["loss_svd"], parts["svd_sigma_rel_err"] = parts["loss_svd"]
        if "mlm_logits" in outputs:
            parts["loss_mlm"] = mlm_loss(outputs["mlm_logits"], outputs["mlm_labels"])
        if "mim_pred" in outputs:
            parts["loss_mim"] = mim_loss(
                outputs["mim_pred"], outputs["mim_target"], outputs["mim_mask"]
            )
        total = parts["loss_contrastive"] + self.svd_weight * parts["loss_svd"]
        total = total + self.mlm_weight * parts["loss_mlm"] + self.mim_weight * parts["loss_mim"]
        if "idle_zero" in outputs:  # 0 that reaches idle heads' parameters (DDP needs grads)
            total = total + outputs["idle_zero"]
        return {"loss": total, **parts}


__all__ = [
    "MedFLIPLoss",
    "clip_loss",
    "clip_term",
    "label_targets",
    "medclip_loss",
    "medclip_term",
    "medflip_loss",
    "medflip_term",
    "mim_loss",
    "mlm_loss",
    "sigma1",
    "soft_targets",
    "svd_pair_loss",
    "svd_spectral_loss",
]
