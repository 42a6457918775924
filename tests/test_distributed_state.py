"""What a multi-worker run shares or keeps per rank: batches, RNG, the tokenizer, loss kinds."""

import os

import pytest
import torch

from medflip import variants
from medflip.config import ConfigError, apply_overrides
from medflip.data import tokenizer as tok
from medflip.data.dataset import build_tokenizer
from medflip.data.sampler import ShardedBatchSampler
from medflip.registry import LOSS_KINDS
from medflip.training import checkpoint
from medflip.training.engine import Hooks
from medflip.training.run_parts import build_parts
from medflip.training.step import StepPlan, train_step


def _global_batches(world, start, n=64, batch=8, seed=3, epoch=1):
    per_rank = [
        list(ShardedBatchSampler(n, batch, seed, epoch, start, r, world)) for r in range(world)
    ]
    return [sorted(sum((shares[b] for shares in per_rank), [])) for b in range(len(per_rank[0]))]


def test_resume_on_another_number_of_workers_sees_the_same_global_batches():
    one = _global_batches(1, start=0)
    assert _global_batches(2, start=3) == one[3:]  # 1 worker's run resumed on 2 at batch 3
    assert _global_batches(4, start=5) == one[5:]
    assert _global_batches(2, start=0) == one


def _tiny_parts():
    cfg = apply_overrides(variants.get("tiny"), {"optim.precision": "fp32"})
    return build_parts(cfg, Hooks())


def test_checkpoint_keeps_every_ranks_rng_and_seeds_a_new_rank(tmp_path):
    parts = _tiny_parts()
    states = []
    for seed in (11, 22):  # what ranks 0 and 1 would hold
        torch.manual_seed(seed)
        states.append(checkpoint.rng_state())
    progress = checkpoint.Progress(step=7)
    checkpoint.save(
        str(tmp_path), parts.unwrapped, parts.optimizer, None, progress, "{}", rng=states
    )
    checkpoint.load(str(tmp_path), parts.unwrapped, parts.optimizer, None, rank=1)
    assert torch.equal(torch.get_rng_state(), states[1]["torch"])
    checkpoint.load(str(tmp_path), parts.unwrapped, parts.optimizer, None, rank=0)
    assert torch.equal(torch.get_rng_state(), states[0]["torch"])
    # a third rank (resumed on more workers) gets its own seed, not rank 0's stream
    checkpoint.load(str(tmp_path), parts.unwrapped, parts.optimizer, None, rank=2, rank_seed=5)
    third = torch.get_rng_state()
    assert not torch.equal(third, states[0]["torch"]) and not torch.equal(third, states[1]["torch"])


def test_one_tokenizer_per_experiment_and_a_differing_one_is_refused(tmp_path):
    cfg = variants.get("tiny")
    path, digest = tok.experiment_tokenizer(cfg, str(tmp_path), lambda: build_tokenizer(cfg))
    assert path == str(tmp_path / tok.EXPERIMENT_FILE) and len(digest) == 12
    assert tok.experiment_tokenizer(cfg, str(tmp_path), lambda: build_tokenizer(cfg)) == (
        path,
        digest,
    )  # built once, kept
    loaded = tok.load_experiment_tokenizer(path, digest, cfg.data.max_text_len)
    assert tok.tokenizer_hash(loaded) == digest
    with pytest.raises(tok.TokenizerMismatch, match=f"{digest}.*0123456789ab"):
        tok.load_experiment_tokenizer(path, "0123456789ab", cfg.data.max_text_len)
    parts = build_parts(cfg, Hooks(tokenizer_file=path, tokenizer_hash=digest))
    assert parts.tokenizer_hash == digest
    progress = checkpoint.Progress()
    checkpoint.save(str(tmp_path / "ck"), parts.unwrapped, parts.optimizer, None, progress, "{}",
                    tokenizer_hash=digest)  # fmt: skip
    with pytest.raises(tok.TokenizerMismatch, match=f"{digest}.*ffffffffffff"):
        checkpoint.load(str(tmp_path / "ck"), parts.unwrapped, parts.optimizer, None,
                        tokenizer_hash="ffffffffffff")  # fmt: skip
    assert os.path.exists(path)


def test_unknown_loss_kind_names_the_registered_ones():
    with pytest.raises(
        ConfigError, match="loss.kind: 'infonce' is not one of clip, medclip, medflip"
    ):
        apply_overrides(variants.get("tiny"), {"loss.kind": "infonce"})
    with pytest.raises(ConfigError, match="not one of clip, medclip, medflip"):
        LOSS_KINDS.load("infonce")


@pytest.mark.parametrize("kind", sorted(LOSS_KINDS))
def test_every_registered_loss_kind_trains_one_production_step(kind):
    """timm-style: registering a kind gives it a forward/backward test through train_step."""
    cfg = apply_overrides(
        variants.get("tiny"), {"optim.precision": "fp32", "loss.kind": kind, "loss.svd_weight": 0.1}
    )
    parts = build_parts(cfg, Hooks())
    batch = next(iter(parts.batches(0, 0)))[0]
    before = [p.detach().clone() for p in parts.unwrapped.parameters()]
    out = train_step(parts.model, parts.criterion, parts.optimizer, batch,
                     StepPlan(lr=1e-3, image_ratio=0.5), grad_clip=1.0)  # fmt: skip
    assert torch.isfinite(torch.tensor(out["loss"])) and out["loss_svd"] > 0
    changed = [
        not torch.equal(a, b) for a, b in zip(before, parts.unwrapped.parameters(), strict=True)
    ]
    assert sum(changed) > len(changed) // 2
