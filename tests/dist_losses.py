"""Global-batch losses at world size 2 against one process on the full batch.

A tiny "model" (linear maps to embeddings and tokens, plus a learned logit scale) is run
on 2 gloo ranks under DDP, each rank on its share of the global batch as the sampler deals
it (rank r takes rows r::2); the reference is the same model on the whole batch in one
process. `run(cases, loss_module)` returns, per case, the relative errors of the loss and of
every parameter's gradient -- `loss_module` lets a script measure an older losses module.
"""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from medflip import variants
from medflip.config import apply_overrides

N, D_IN, D, K, T = 16, 12, 8, 5, 7  # global batch, input width, embed width, tokens
WORLD = 2

CASES = {
    "clip": {"loss.kind": "clip"},
    "medclip": {"loss.kind": "medclip"},
    "medflip": {"loss.kind": "medflip"},
    "svd_pair": {"loss.kind": "clip", "loss.svd_weight": 0.5, "loss.svd_form": "pair"},
    "svd_spectral": {"loss.kind": "clip", "loss.svd_weight": 0.5, "loss.svd_form": "spectral"},
    "partly_paired": {"loss.kind": "medclip", "loss.svd_weight": 0.5, "paired": True},
    # rows without an image (text-only reports), a different number on each rank
    "text_only": {
        "loss.kind": "medclip",
        "loss.svd_weight": 0.5,
        "paired": True,
        "text_only": True,
    },
}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.img, self.txt = nn.Linear(D_IN, D), nn.Linear(D_IN, D)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, batch: dict) -> dict:
        image_tok = batch["image_tok"]  # the image tower sees only rows with an image
        if "has_image" in batch:
            image_tok = image_tok[batch["has_image"]]
        tokens_i = self.img(image_tok)  # [n_i, K, D]
        tokens_t = self.txt(batch["text_tok"])  # [n, T', D]
        mask = batch["text_mask"][:, :, None].float()  # [n, T', 1]
        return {
            "image_emb": F.normalize(tokens_i.mean(1), dim=-1),
            "text_emb": F.normalize((tokens_t * mask).sum(1) / mask.sum(1), dim=-1),
            "image_tokens": tokens_i,
            "text_tokens": tokens_t,
            "text_token_mask": batch["text_mask"],
            "temperature": torch.exp(-self.logit_scale),
        }


def global_batch(paired: bool, text_only: bool = False) -> dict:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, T + 1, (N,), generator=g)
    lengths[0::2] = lengths[0::2].clamp(max=4)  # rank 0's texts are shorter: padding matters
    labels = torch.randint(-1, 2, (N, 14), generator=g).float()
    batch = {
        "image_tok": torch.randn(N, K, D_IN, generator=g),
        "text_tok": torch.randn(N, T, D_IN, generator=g),
        "text_mask": torch.arange(T)[None, :] < lengths[:, None],
        "image_labels": labels,
        "labels": labels,
    }
    if paired:  # rank 1's rows (odd) are all unpaired: that rank has no local pair
        batch["paired"] = torch.tensor([i % 2 == 0 and i % 4 != 0 for i in range(N)])
    if text_only:  # rank 0 gets 5 of its 8 rows with an image, rank 1 gets 6
        batch["has_image"] = torch.tensor([i % 3 != 2 for i in range(N)])
        batch["paired"] = batch["paired"] & batch["has_image"]
    return batch


def shard(batch: dict, rank: int, world: int) -> dict:
    out = {k: v[rank::world] for k, v in batch.items()}
    longest = int(out["text_mask"].sum(1).max())  # each rank trims to its own longest text
    out["text_tok"], out["text_mask"] = out["text_tok"][:, :longest], out["text_mask"][:, :longest]
    return out


def loss_and_grads(model, criterion, batch) -> tuple[float, dict]:
    losses = criterion(model(batch), batch)
    losses["loss"].backward()
    inner = getattr(model, "module", model)
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
             for n, p in inner.named_parameters()}  # fmt: skip
    return float(losses["loss"].detach()), grads


def _criterion(loss_module, overrides: dict):
    keys = {k: v for k, v in overrides.items() if "." in k}
    cfg = apply_overrides(variants.get("tiny"), {"optim.precision": "fp32", **keys})
    return loss_module.MedFLIPLoss(cfg)


def _worker(rank: int, world: int, init: str, out: str, cases: dict, module_name: str):
    import importlib

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    loss_module = importlib.import_module(module_name)
    results = {}
    for name, overrides in cases.items():
        model = nn.parallel.DistributedDataParallel(Tiny())
        batch = shard(
            global_batch(overrides.get("paired", False), overrides.get("text_only", False)),
            rank,
            world,
        )
        results[name] = loss_and_grads(model, _criterion(loss_module, overrides), batch)
    torch.save(results, f"{out}.{rank}")
    dist.destroy_process_group()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def run(cases: dict = CASES, module_name: str = "medflip.losses.contrastive") -> dict[str, dict]:
    """{case: {"loss": rel err, "grad": max rel err over parameters, "loss_value": ...}}."""
    import importlib

    loss_module = importlib.import_module(module_name)
    with tempfile.TemporaryDirectory() as tmp:
        init, out = f"file://{os.path.join(tmp, 'rdv')}", os.path.join(tmp, "res")
        mp.spawn(_worker, (WORLD, init, out, cases, module_name), nprocs=WORLD, join=True)
        ranks = [torch.load(f"{out}.{r}") for r in range(WORLD)]
    report = {}
    for name, overrides in cases.items():
        ref_loss, ref_grads = loss_and_grads(
            Tiny(),
            _criterion(loss_module, overrides),
            global_batch(overrides.get("paired", False), overrides.get("text_only", False)),
        )
        loss0, grads0 = ranks[0][name]
        report[name] = {
            "loss_value": ref_loss,
            "loss": abs(loss0 - ref_loss) / abs(ref_loss),
            "loss_ranks_equal": all(r[name][0] == loss0 for r in ranks),
            "grad": max(rel_err(grads0[k], ref_grads[k]) for k in ref_grads),
            "grads_ranks_equal": all(
                torch.equal(r[name][1][k], grads0[k]) for r in ranks for k in grads0
            ),
        }
    return report
