"""The precision rules, each once: where bf16 is native, what `optim.precision=auto` runs,
that fp16 needs CUDA, the autocast context and the fp16 grad scaler."""

from __future__ import annotations

import contextlib

import torch


def native_bf16(device_type: str) -> bool:
    """Whether bf16 matmuls are fast here: a GPU that supports bf16, or a CPU oneDNN runs
    bf16 on (AVX512/AMX). On an AVX2-only CPU bf16 autocast made a linear layer ~10x
    slower than fp32 (2.07 s vs 0.19 s, 16k x 192 -> 768, one thread, AMD EPYC)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """`auto` -> bf16 where it is native (see native_bf16), else fp32; others unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(torch.device(device).type) else "fp32"


def precision_problem(precision: str, device_type: str) -> str:
    """ "" if `precision` runs on `device_type` ("cpu", "cuda"), else why not: fp16 needs
    CUDA, since torch has no fp16 GradScaler elsewhere (the checks before a run, the run)."""
    if precision == "fp16" and device_type != "cuda":
        return (
            f"fp16 needs a CUDA device (this run is on {device_type.upper()}; torch has no "
            "fp16 GradScaler there); use bf16 or fp32"
        )
    return ""


def autocast(device: torch.device | str, precision: str):
    """The one autocast rule: bf16 on CPU and GPU; fp16 where `precision_problem` allows it
    (with the scaler of `grad_scaler`); fp32 runs without autocast; `auto` per
    resolve_precision."""
    device_type = torch.device(device).type
    precision = resolve_precision(precision, device)
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision == "fp16" and not precision_problem(precision, device_type):
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(precision: str) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (CUDA only, per precision_problem); None for every other precision."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" else None
