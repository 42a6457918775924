"""Everything one run needs, built from a config: data, model, loss, optimiser, evaluation.

Kept apart from the loop in engine.py so the loop reads as training, not plumbing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from medflip.config import Config
from medflip.data import eval_sets as benchmark
from medflip.data.controls import ShuffledReports
from medflip.data.dataset import build_tokenizer, build_train_dataset, collate
from medflip.data.sampler import ShardedBatchSampler
from medflip.data.tokenizer import load_experiment_tokenizer, tokenizer_hash
from medflip.device.precision import grad_scaler, precision_problem
from medflip.evaluation import evaluate as evaluation
from medflip.losses.contrastive import MedFLIPLoss
from medflip.models.medflip import MedFLIP

log = logging.getLogger("medflip.training.engine")


def rank_seed(seed: int, rank: int) -> int:
    """Rank `rank`'s torch seed for masking noise: different on every rank, the same on
    every run of a seed (a resumed run reseeds from it, see checkpoint.load)."""
    return seed * 1000 + rank + 1


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, embeddings' positions and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "pos_embed" in name or "token" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """The run's AdamW (also what benchmarks/masking.py and throughput.py time)."""
    return torch.optim.AdamW(
        _param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr, betas=(0.9, 0.98)
    )


@dataclass
class RunParts:
    cfg: Config
    device: torch.device
    model: torch.nn.Module  # possibly DDP-wrapped
    unwrapped: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    dataset: torch.utils.data.Dataset
    tokenizer: object
    tokenizer_hash: str
    rank: int
    world_size: int

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[dict, float]]:
        """(batch, seconds waited for it) for this rank, from `start_batch` of `epoch`."""
        sampler = ShardedBatchSampler(
            len(self.dataset),
            self.cfg.optim.batch_size,
            self.cfg.seed,
            epoch,
            start_batch,
            self.rank,
            self.world_size,
        )
        workers = self.cfg.data.loader_workers
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator().manual_seed(self.cfg.seed + epoch),  # keeps global RNG
        )
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            yield batch, time.perf_counter() - t0

    def evaluate(self, full: bool = True) -> dict[str, float]:
        """Evaluation metrics; `full=False` is a cheap curve point (eval.curve_items)."""
        sets = benchmark.build_eval_sets(self.cfg)
        prompts = benchmark.eval_prompts(self.cfg)
        return evaluation.evaluate(
            self.unwrapped,
            self.tokenizer,
            sets,
            self.cfg,
            self.device,
            prompts,
            probe=self.cfg.eval.probe,
            full=full,
        )


def _tokenizer(cfg: Config, hooks):
    """The experiment's shared tokenizer file when the caller names one, else built here."""
    if hooks.tokenizer_file:
        return load_experiment_tokenizer(
            hooks.tokenizer_file, hooks.tokenizer_hash, cfg.data.max_text_len
        )
    return build_tokenizer(cfg)


def build_parts(cfg: Config, hooks) -> RunParts:
    """Data, model (prepared by `hooks.prepare_model`), loss, optimiser for rank `hooks.rank`."""
    device = pick_device()
    problem = precision_problem(cfg.optim.precision, device.type)
    if problem:
        raise ValueError(f"optim.precision: {problem}")
    prepare_model, rank, world_size = hooks.prepare_model, hooks.rank, hooks.world_size
    tokenizer = _tokenizer(cfg, hooks)
    vocab_hash = tokenizer_hash(tokenizer)  # before use: encoding stores padding state in it
    dataset = build_train_dataset(cfg, tokenizer)
    if cfg.data.shuffle_reports:
        dataset = ShuffledReports(dataset, cfg.data.seed)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = MedFLIP(
        cfg,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tokenizer.all_special_ids,
    ).to(device)
    unwrapped = model
    model = prepare_model(model)
    torch.manual_seed(rank_seed(cfg.seed, rank))  # per-rank masking noise
    optimizer = build_optimizer(unwrapped, cfg)
    scaler = grad_scaler(cfg.optim.precision)
    parts = RunParts(
        cfg,
        device,
        model,
        unwrapped,
        MedFLIPLoss(cfg).to(device),
        optimizer,
        scaler,
        dataset,
        tokenizer,
        vocab_hash,
        rank,
        world_size,
    )
    log.info(
        "model %.1fM parameters on %s, %d training pairs",
        sum(p.numel() for p in unwrapped.parameters()) / 1e6,
        device_name(device),
        len(dataset),
    )
    return parts
