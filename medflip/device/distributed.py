"""The collectives of a multi-worker run: global-batch gathers and the per-step agreement.

No Ray here: Ray Train (or a test's `torch.multiprocessing` + gloo) initialises the process
group; everything below is a no-op at world size 1, so one process runs the same code.

Gathers follow open_clip's `ClipLoss` with `gather_with_grad`: features are all-gathered with
`torch.distributed.nn.functional.all_gather`, whose backward sums every rank's gradient into
the local slice. Every rank then computes the *same* global-batch loss, so each rank's
gradient is `world_size` x dL/d(its features), and DDP's averaging turns that back into the
single-process gradient of the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_rows(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """[n, ...] on each rank -> [world * n, ...], rank r's rows at [r * n, (r + 1) * n).

    Every rank's n must be equal (the sampler gives each rank B / world rows); `grad=False`
    for labels and masks, which carry no gradient.
    """
    if world_size() == 1:
        return x
    if grad and x.requires_grad:
        return torch.cat(dist_fn.all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest `value` of any rank (e.g. text length, to pad token tensors to)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def pad_dim1(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad dim 1 of x [n, T, ...] to `size` (bool tensors pad with False)."""
    missing = size - x.shape[1]
    if missing <= 0:
        return x
    pad = [0, 0] * (x.dim() - 2) + [0, missing]
    if x.dtype == torch.bool:
        return F.pad(x.to(torch.uint8), pad).bool()
    return F.pad(x, pad)


def agree(rank0_values: list[float], summed: list[float], device: torch.device) -> list[float]:
    """The step's one agreement collective: one all-reduce of a small vector.

    Returns rank 0's `rank0_values` (every other rank contributes zeros: broadcast by sum)
    followed by the sum over ranks of `summed` (e.g. a non-finite flag, per-rank losses).
    """
    if world_size() == 1:
        return [*rank0_values, *summed]
    mine = rank0_values if rank() == 0 else [0.0] * len(rank0_values)
    t = torch.tensor([*mine, *summed], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj) -> list:
    """Every rank's picklable `obj`, in rank order (e.g. RNG states for the checkpoint)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
