"""Image tower: a timm ViT whose encoder runs only on the kept patches (FLIP), plus an
MAE-style decoder that reconstructs the dropped ones (eq. 9, the `image` masking variant).

Dropping patches *before* the blocks is where FLIP's speed comes from: the encoder cost
scales with the K = round(L * (1 - ratio)) visible tokens, not with L.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block, VisionTransformer
from torch.nn.attention import SDPBackend, sdpa_kernel

from medflip.config import Config
from medflip.models.masking import random_keep_indices


class ImageOutput(NamedTuple):
    pooled: torch.Tensor  # [N, W] mean of the visible patch tokens
    tokens: torch.Tensor  # [N, K, W] visible patch tokens after the final norm (no cls)
    keep: torch.Tensor  # [N, K] long, indices of the visible patches (ascending)
    masked: torch.Tensor  # [N, L-K] long, indices of the dropped patches (ascending)
    latent: torch.Tensor  # [N, 1+K, W] full encoder output (cls first), for the decoder


def cpu_sdpa(device: torch.device):
    """On CPU, the plain-matmul ("math") attention backend; elsewhere torch's choice.

    At these sequence lengths (<= ~100 tokens) CPU flash attention's backward is slow: with
    the math backend a demo step's image tower (r = 0.75) ran 33 % faster and the text
    tower 15 % (benchmarks/masking.py conditions). GPUs keep their fused kernels.
    """
    if device.type == "cpu":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def build_vit(cfg: Config) -> VisionTransformer:
    """The timm ViT from config sizes: grayscale input, no head, no pretrained weights."""
    return VisionTransformer(
        img_size=cfg.data.image_size,
        patch_size=cfg.model.patch_size,
        in_chans=1,
        num_classes=0,
        embed_dim=cfg.model.image_width,
        depth=cfg.model.image_depth,
        num_heads=cfg.model.image_heads,
        class_token=True,
        no_embed_class=False,  # pos_embed has a cls slot: [1, 1+L, W] (original timm/JAX)
        reg_tokens=0,
    )


class ImageTower(nn.Module):
    """ViT encoder over a random subset of patches.

    Pooling: the mean of the visible patch tokens (FLIP-style global average pooling). The
    mean uses every visible token, the same tokens the token-level SVD term aligns, and it
    does not hinge on one cls token that sees a different number of tokens in training
    (K) and evaluation (L). The cls token is still run (as timm does) so that the ratio-0
    path is exactly timm's `forward_features`.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.vit = build_vit(cfg)
        # Training below data.image_size (data.train_image_size) feeds smaller images; their
        # positions are resampled from the full-size table (`pos_embed_for`).
        self.vit.patch_embed.strict_img_size = False
        self.num_patches = self.vit.patch_embed.num_patches  # at data.image_size
        self.width = cfg.model.image_width

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """[1, 1+L, W] positions (cls first) for a patch grid: the learned table itself at
        full size, else resampled from it as timm's `dynamic_img_size` does (bicubic,
        antialiased; the cls slot kept), so gradients reach the full-size table."""
        vit = self.vit
        if tuple(grid) == tuple(vit.patch_embed.grid_size):
            return vit.pos_embed
        return resample_abs_pos_embed(
            vit.pos_embed, new_size=list(grid), old_size=list(vit.patch_embed.grid_size),
            num_prefix_tokens=1,
        )  # fmt: skip

    def forward(self, images: torch.Tensor, ratio: float = 0.0) -> ImageOutput:
        """images [N, 1, H, W] -> ImageOutput; ratio = share of patches dropped."""
        with cpu_sdpa(images.device):
            return self._forward(images, ratio)

    def _forward(self, images: torch.Tensor, ratio: float) -> ImageOutput:
        vit = self.vit
        x = vit.patch_embed(images)  # [N, L, W]
        n, num_patches, width = x.shape
        pos = self.pos_embed_for(patch_grid(images, vit.patch_embed.patch_size[0]))
        x = x + pos[:, 1:, :]  # positions first, so they survive the gather
        if ratio > 0:
            keep, masked = random_keep_indices(n, num_patches, ratio, device=x.device)
            x = x.gather(1, keep[:, :, None].expand(-1, -1, width))  # [N, K, W]
        else:  # no gather at all: bit-identical to timm's forward_features
            keep = torch.arange(num_patches, device=x.device).expand(n, -1)
            masked = keep[:, :0]
        cls = (vit.cls_token + pos[:, :1, :]).expand(n, -1, -1)  # [N, 1, W]
        x = vit.pos_drop(torch.cat([cls, x], dim=1))  # [N, 1+K, W]
        x = vit.norm_pre(vit.patch_drop(x))
        x = vit.norm(vit.blocks(x))  # [N, 1+K, W]
        tokens = x[:, 1:]  # [N, K, W]
        return ImageOutput(tokens.mean(dim=1), tokens, keep, masked, x)


def patch_grid(images: torch.Tensor, patch_size: int) -> tuple[int, int]:
    """(rows, columns) of patches of a [N, C, H, W] batch."""
    return images.shape[-2] // patch_size, images.shape[-1] // patch_size


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size, size] (CLIPA/RECLIP's low-resolution training input):
    bilinear with antialiasing, i.e. an area-weighted average when shrinking; a no-op at
    the batch's own size. Images are normalised by one global affine map, which commutes
    with the resampling, so resizing after normalisation is the same as before it."""
    if size <= 0 or tuple(images.shape[-2:]) == (size, size):
        return images
    return torch.nn.functional.interpolate(
        images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, L, p*p*C] in the raster order of timm's patch_embed."""
    n, c, h, w = images.shape
    p = patch_size
    x = images.reshape(n, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), p * p * c)


def normalized_patches(images: torch.Tensor, patch_size: int, eps: float = 1e-6) -> torch.Tensor:
    """MAE's norm_pix_loss targets: each patch's pixels standardised by its own mean/var."""
    target = patchify(images.float(), patch_size)  # [N, L, P]
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps).sqrt()


class MAEDecoder(nn.Module):
    """Light MAE decoder: embed visible tokens, fill dropped slots with a learned mask token,
    add fixed 2-D sin-cos positions, run timm Blocks, predict each patch's normalised pixels.
    """

    def __init__(self, cfg: Config, grid_size: tuple[int, int]):
        super().__init__()
        width, enc_width = cfg.model.decoder_width, cfg.model.image_width
        if width % 4:  # the 2-D sin-cos table splits the width into 4 parts
            raise ValueError(f"model.decoder_width: {width} is not a multiple of 4")
        # Heads of width >= 32 like MAE's decoder (512 wide, 16 heads); narrow decoders get 1.
        heads = max(h for h in range(1, 17) if width % h == 0 and (width // h >= 32 or h == 1))
        self.patch_size = cfg.model.patch_size
        self.embed = nn.Linear(enc_width, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.grid_size = tuple(grid_size)
        self.register_buffer("pos_embed", _decoder_pos(grid_size, width), persistent=False)
        self.blocks = nn.Sequential(
            *[Block(width, heads, qkv_bias=True) for _ in range(cfg.model.decoder_depth)]
        )
        self.norm = nn.LayerNorm(width)
        self.pred = nn.Linear(width, self.patch_size**2)  # in_chans = 1
        trunc_normal_(self.mask_token, std=0.02)

    def forward(self, out: ImageOutput, grid: tuple[int, int]) -> torch.Tensor:
        """Encoder output of images with a `grid` of patches -> predicted normalised pixels
        for every patch, [N, L, p*p] (fixed sin-cos positions: any grid has its own)."""
        x = self.embed(out.latent)  # [N, 1+K, Wd]
        n, _, width = x.shape
        num_patches = grid[0] * grid[1]
        full = self.mask_token.to(x.dtype).expand(n, num_patches, width).clone()  # [N, L, Wd]
        full.scatter_(1, out.keep[:, :, None].expand(-1, -1, width), x[:, 1:])
        pos = self.pos_embed if tuple(grid) == self.grid_size else _decoder_pos(grid, width)
        x = torch.cat([x[:, :1], full], dim=1) + pos.to(x.device, x.dtype)  # [N, 1+L, Wd]
        with cpu_sdpa(x.device):
            x = self.norm(self.blocks(x))
        return self.pred(x[:, 1:])  # [N, L, p*p]


def _decoder_pos(grid: tuple[int, int], width: int) -> torch.Tensor:
    """[1, 1+L, Wd] fixed 2-D sin-cos positions of a patch grid, a zero cls slot first."""
    pos = build_sincos2d_pos_embed(list(grid), dim=width)  # [L, Wd]
    return torch.cat([torch.zeros(1, width), pos], dim=0)[None]
