"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a directory holding `state.pt` (model, optimiser, grad scaler,
RNG states, progress counters; the learning rate is a function of progress) and
`config.json`. Written to a temp file and renamed, so a
crash mid-save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

STATE_FILE = "state.pt"


@dataclass
class Progress:
    """Counters that survive a restart (the data position included)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # global batches of `epoch` already consumed
    samples_seen: int = 0
    train_time_s: float = 0.0
    wall_time_s: float = 0.0  # wall-clock of earlier attempts, so the total spans restarts
    resumed: bool = False


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    state["numpy"] = np.random.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: str, model, optimizer, scaler, progress: Progress, cfg_json: str):
    """Write a complete checkpoint into `directory` (created if needed)."""
    os.makedirs(directory, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _rng_state(),
        "progress": asdict(progress),
    }
    tmp = os.path.join(directory, STATE_FILE + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, os.path.join(directory, STATE_FILE))
    with open(os.path.join(directory, "config.json"), "w") as f:
        f.write(cfg_json)


def load(directory: str, model, optimizer, scaler) -> Progress:
    """Restore everything `save` wrote; returns the progress counters (marked resumed)."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    _set_rng_state(payload["rng"])
    progress = Progress(**payload["progress"])
    progress.resumed = True
    return progress


def saved_config(directory: str) -> dict:
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)
