"""The MedFLIP dual encoder: masked ViT + BERT, linear projections, temperature.

Training calls `forward(batch, image_ratio, text_ratio)`; evaluation calls the unmasked
`encode_image` / `encode_text`. Masks are drawn from torch's default RNG on the model's
device, so an engine that saves and restores RNG state resumes bit-exactly.

Text masking (eq. 8) runs a second text pass by default (as ALBEF and BLIP do): the
contrastive/SVD branch sees the intact report, like the zero-shot prompts at evaluation,
and the MLM branch the masked copy. `shared_text_pass=True` (FLIP's choice) encodes only
the masked text and feeds both branches: cheaper by one text forward + backward, but
the contrastive branch then trains on corrupted reports. Costs: benchmarks/masking.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from medflip.config import Config
from medflip.models.image import ImageTower, MAEDecoder, normalized_patches, patch_grid
from medflip.models.masking import mask_tokens, objectives
from medflip.models.text import TextTower

# tau is kept in [0.01, 1] (CLIP clamps logit_scale at 100, i.e. tau >= 0.01; above 1 the
# logits lie in [-1, 1] and the softmax is nearly uniform). Widened to include the initial tau.
# Clamped CLIP-style: the parameter, after each optimiser step (`clamp_temperature_`), so a
# tau at a bound still gets a gradient that can pull it back (a clamp in the forward pass
# would give it exactly zero for good).
TAU_MIN, TAU_MAX = 0.01, 1.0


class MedFLIP(nn.Module):
    """Dual encoder. `special_token_ids` ([CLS], [SEP], [PAD], [MASK], ...) are never masked
    for MLM and are left out of the token-level SVD term."""

    def __init__(
        self,
        cfg: Config,
        vocab_size: int,
        pad_token_id: int,
        mask_token_id: int,
        special_token_ids: Sequence[int],
        shared_text_pass: bool = False,
    ):
        super().__init__()
        self.shared_text_pass = shared_text_pass
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.mask_token_id = mask_token_id
        self.special_token_ids = tuple(int(i) for i in special_token_ids)
        self.register_buffer(
            "special_ids", torch.tensor(self.special_token_ids, dtype=torch.long), persistent=False
        )
        self.image = ImageTower(cfg)
        # Heads exist only for the variants that train them: a parameter that never gets a
        # gradient stalls DDP (its all-reduce waits forever) and is dead weight in checkpoints.
        use_mim, use_mlm = objectives(cfg)
        self.text = TextTower(cfg, vocab_size, pad_token_id, mlm=use_mlm)
        self.image_proj = nn.Linear(self.image.width, cfg.model.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, cfg.model.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=self.image.width**-0.5)
        nn.init.normal_(self.text_proj.weight, std=self.text.width**-0.5)
        self.decoder = None
        if use_mim:
            self.decoder = MAEDecoder(cfg, self.image.vit.patch_embed.grid_size)
        # Projected token outputs cost a [N, T, W] x [W, D] matmul; only the pair SVD uses them.
        self.return_tokens = cfg.loss.svd_weight > 0 and cfg.loss.svd_form == "pair"
        tau = cfg.loss.temperature
        self.log_scale_bounds = (-math.log(max(TAU_MAX, tau)), -math.log(min(TAU_MIN, tau)))
        scale = torch.tensor(-math.log(tau))  # log(1/tau), CLIP's logit_scale
        if cfg.loss.learn_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)

    def temperature(self) -> torch.Tensor:
        """tau = exp(-logit_scale) (scalar tensor); kept in bounds by `clamp_temperature_`."""
        return torch.exp(-self.logit_scale)

    @torch.no_grad()
    def clamp_temperature_(self) -> None:
        """Clamp logit_scale into [log 1/TAU_MAX, log 1/TAU_MIN], after the optimiser step."""
        low, high = self.log_scale_bounds
        self.logit_scale.clamp_(low, high)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] -> [N, D] L2-normalised, all patches (evaluation)."""
        return F.normalize(self.image_proj(self.image(images, 0.0).pooled), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[N, T] ids + mask -> [N, D] L2-normalised, intact text (evaluation)."""
        return F.normalize(self.text_proj(self.text(input_ids, attention_mask).pooled), dim=-1)

    def forward(self, batch: dict, image_ratio: float, text_ratio: float = 0.0) -> dict:
        """One training forward. See the module docstring for which text each branch sees.

        Returns image_emb, text_emb [N, D] (normalised); text_token_mask [N, T'] bool (real,
        non-special tokens; T' = the batch's last non-pad column); temperature (scalar);
        keep [N, K]; when `return_tokens` (default: the pair SVD term is on) image_tokens
        [N, K, D] and text_tokens [N, T', D] (projected, not normalised); when active
        mlm_logits [M, V] / mlm_labels [M] (masked tokens only) and mim_pred / mim_target
        [N, L, p*p] with mim_mask [N, L] (1 = dropped); and
        idle_zero (a 0 touching an existing but idle head, which MedFLIPLoss adds to `loss`).
        """
        mim, mlm = self.decoder is not None and image_ratio > 0, text_ratio > 0
        if mlm and self.text.mlm_head is None:
            raise ValueError(
                "text_ratio > 0 needs mask.variant text or both and loss.mlm_weight > 0"
            )
        image = self.image(batch["image"], image_ratio)
        ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        if mlm:
            masked_ids, mlm_labels = mask_tokens(
                ids, attention_mask, text_ratio, self.mask_token_id,
                self.special_token_ids, self.vocab_size,
            )  # fmt: skip
        text = self.text(masked_ids if mlm and self.shared_text_pass else ids, attention_mask)
        out = self._outputs(image, text)
        if mim:
            out.update(self._mim(batch["image"], image))
        if mlm:
            masked = text if self.shared_text_pass else self.text(masked_ids, attention_mask)
            mlm_labels = mlm_labels[:, : masked.tokens.shape[1]]
            logits, labels = self.text.mlm_logits(masked.tokens, mlm_labels)
            out.update(mlm_logits=logits, mlm_labels=labels)
        heads = ((self.decoder, mim), (self.text.mlm_head, mlm))
        idle = [head for head, active in heads if head is not None and not active]
        if idle:  # e.g. FLIP's unmasked tuning: keep the idle head in the graph for DDP
            out["idle_zero"] = sum(p.sum() for h in idle for p in h.parameters()) * 0.0
        return out

    def _outputs(self, image, text) -> dict:
        """Projections, normalisation and the token-level outputs of one forward."""
        special = torch.isin(text.input_ids, self.special_ids)
        out = {
            "image_emb": F.normalize(self.image_proj(image.pooled), dim=-1),
            "text_emb": F.normalize(self.text_proj(text.pooled), dim=-1),
            "text_token_mask": text.attention_mask.bool() & ~special,
            "temperature": self.temperature(),
            "keep": image.keep,
        }
        if self.return_tokens:
            out["image_tokens"] = self.image_proj(image.tokens)
            out["text_tokens"] = self.text_proj(text.tokens)
        return out

    def _mim(self, images: torch.Tensor, image) -> dict:
        """MAE reconstruction of the dropped patches (eq. 9)."""
        grid = patch_grid(images, self.cfg.model.patch_size)  # the batch's, maybe reduced
        pred = self.decoder(image, grid)  # [N, L, p*p]
        mask = torch.zeros(pred.shape[:2], device=pred.device)
        mask.scatter_(1, image.masked, 1.0)  # [N, L], 1 = dropped
        target = normalized_patches(images, self.cfg.model.patch_size)  # [N, L, p*p]
        return {"mim_pred": pred, "mim_target": target, "mim_mask": mask}
