"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a directory holding `state.pt` (model, optimiser, grad scaler, every
rank's RNG states, progress counters, the tokenizer's hash; the learning rate is a function
of progress) and `config.json`. Written to a temp file and renamed, so a
crash mid-save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from medflip.data.tokenizer import TokenizerMismatch

STATE_FILE = "state.pt"


@dataclass
class Progress:
    """Counters that survive a restart (the data position included)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # global batches of `epoch` already consumed
    samples_seen: int = 0
    train_time_s: float = 0.0
    train_flops: float = 0.0  # models/flops.py count over every rank (the FLOPs budget's clock)
    wall_time_s: float = 0.0  # wall-clock of earlier attempts, so the total spans restarts


def rng_state() -> dict:
    """This process's RNG states; CUDA's for the current device only (a resume may see
    fewer GPUs, and each rank owns one)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    state["numpy"] = np.random.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])  # the current device


def save(
    directory: str,
    model,
    optimizer,
    scaler,
    progress: Progress,
    cfg_json: str,
    rng: list[dict] | None = None,
    tokenizer_hash: str = "",
):
    """Write a complete checkpoint into `directory` (created if needed).

    `rng`: every rank's `rng_state()` in rank order (default: this process's only).
    """
    os.makedirs(directory, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng if rng is not None else [rng_state()],
        "progress": asdict(progress),
        "tokenizer_hash": tokenizer_hash,
    }
    tmp = os.path.join(directory, STATE_FILE + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, os.path.join(directory, STATE_FILE))
    with open(os.path.join(directory, "config.json"), "w") as f:
        f.write(cfg_json)


def load(
    directory: str,
    model,
    optimizer,
    scaler,
    rank: int = 0,
    tokenizer_hash: str = "",
    rank_seed: int = 0,
) -> Progress:
    """Restore everything `save` wrote; returns the progress counters.

    Rank r takes the RNG state rank r saved. A rank the checkpoint has no state for (the run
    resumes on more workers) seeds torch with `rank_seed` + step: masks differ from an
    uninterrupted run, the data order does not (the sampler is a function of progress).
    Refuses a checkpoint written with another tokenizer, naming both hashes.
    """
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    saved_hash = payload.get("tokenizer_hash", "")
    if saved_hash and tokenizer_hash and saved_hash != tokenizer_hash:
        raise TokenizerMismatch(
            f"{directory}: checkpoint trained with tokenizer {saved_hash}, this worker's "
            f"tokenizer is {tokenizer_hash}; refusing to train"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    progress = Progress(**payload["progress"])
    states = payload["rng"]
    if rank < len(states):
        _set_rng_state(states[rank])
    else:
        torch.manual_seed(rank_seed * 1_000_003 + progress.step)
    return progress


def saved_config(directory: str) -> dict:
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)
