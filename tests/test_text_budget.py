"""Token budgets (issue 23): text reduction by policy, low-resolution training, full-size
tuning, evaluation untouched, exact resume, FLOPs of the kept tokens."""

import math
import os

import numpy as np
import pytest
import torch

from medflip import variants
from medflip.config import ConfigError, apply_overrides
from medflip.data import text_budget as tb
from medflip.data.dataset import build_tokenizer, build_train_dataset, collate
from medflip.data.labels import label_vector
from medflip.models import flops
from medflip.models.image import ImageTower, resize_images
from medflip.training import engine, schedule, step

CLS, SEP, PAD = 2, 3, 0


def tiny(**overrides):
    base = {"optim.precision": "fp32", "optim.max_steps": 6}
    return apply_overrides(variants.get("tiny"), {**base, **overrides})


def random_rows(rng, b=24, t=40):
    """A batch of left-aligned rows: [CLS] content [SEP] then padding; ids are the
    position + 100 (so a kept token says where it came from); ranks in {0, 1, 2}."""
    n = rng.integers(2, t + 1, size=b)  # [B] real tokens, [CLS] and [SEP] included
    pos = np.arange(t)[None, :]
    mask = pos < n[:, None]
    ids = np.where(mask, pos + 100, PAD)
    ids[:, 0] = CLS
    ids[np.arange(b), n - 1] = SEP
    priority = np.where(mask, rng.integers(0, 3, size=(b, t)), 0)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).long()  # noqa: E731
    return {"input_ids": as_t(ids), "attention_mask": as_t(mask), tb.PRIORITY_KEY: as_t(priority)}


def expected_kept(n: int, budget: float) -> int:
    if budget < 1:
        return min(n, max(3, math.ceil(n * budget)))
    return min(n, int(budget))


@pytest.mark.parametrize("policy", tb.POLICIES)
def test_kept_tokens_obey_budget_and_policy_over_many_random_reports(policy):
    rng = np.random.default_rng(0)
    for case in range(60):
        batch = random_rows(rng)
        budget = [3, 8, 16, 0.25, 0.5, 0.9][case % 6]
        g = torch.Generator().manual_seed(case)
        out = tb.reduce_batch(batch, budget, policy, g)
        assert tb.PRIORITY_KEY not in out
        for row in range(len(batch["input_ids"])):
            n = int(batch["attention_mask"][row].sum())
            k = int(out["attention_mask"][row].sum())
            kept = out["input_ids"][row, :k].tolist()
            assert k == expected_kept(n, budget), (case, row, n, k)
            assert out["attention_mask"][row, k:].sum() == 0  # packed left
            if n < 2:
                continue
            assert kept[0] == CLS and kept[-1] == SEP
            positions = [i - 100 for i in kept[1:-1]]  # original positions of content
            assert positions == sorted(set(positions))  # text order, no repeats
            assert all(1 <= p <= n - 2 for p in positions)
            c = len(positions)
            if policy == "truncate":
                assert positions == list(range(1, 1 + c))
            elif policy == "block" and c:
                assert positions == list(range(positions[0], positions[0] + c))
            elif policy == "findings":
                rank = batch[tb.PRIORITY_KEY][row].tolist()
                dropped = [p for p in range(1, n - 1) if p not in positions]
                # nothing dropped outranks anything kept; ties go to the earlier token
                for p in dropped:
                    assert all(
                        rank[p] < rank[q] or (rank[p] == rank[q] and p > q) for q in positions
                    )


def test_random_and_block_draw_each_content_token_at_the_expected_rate():
    """Simulation against the known truth: a row of m content tokens keeping c of them
    keeps each token with probability c / m (random); a block keeps token i with the
    share of the m - c + 1 start offsets that cover it."""
    m, c, draws = 20, 5, 4000
    row = {"input_ids": torch.tensor([[CLS, *range(100, 100 + m), SEP]]).repeat(draws, 1)}
    row["attention_mask"] = torch.ones_like(row["input_ids"])
    g = torch.Generator().manual_seed(1)
    rate = tb.keep_mask(row["attention_mask"], c + 2, "random", generator=g)[:, 1:-1]
    freq = rate.double().mean(dim=0)
    se = math.sqrt(c / m * (1 - c / m) / draws)
    assert (freq - c / m).abs().max() < 5 * se
    block = tb.keep_mask(row["attention_mask"], c + 2, "block", generator=g)[:, 1:-1]
    starts = m - c + 1
    truth = torch.tensor([min(i, c - 1, m - 1 - i, starts - 1) + 1 for i in range(m)]) / starts
    assert (block.double().mean(dim=0) - truth).abs().max() < 0.04


def test_budget_zero_is_the_identity_and_bad_budgets_are_refused():
    batch = random_rows(np.random.default_rng(3))
    out = tb.reduce_batch(batch, 0, "random")
    assert torch.equal(out["input_ids"], batch["input_ids"])
    for key, value in (
        ("mask.text_tokens", 1.5),
        ("mask.text_tokens", 2),
        ("mask.text_tokens", 64),
    ):
        with pytest.raises(ConfigError, match=key):
            tiny(**{key: value})
    for value in (12, 40):  # not a multiple of the patch (8), larger than image_size (32)
        with pytest.raises(ConfigError, match="data.train_image_size"):
            tiny(**{"data.train_image_size": value})
    with pytest.raises(ConfigError, match="mask.text_policy"):
        tiny(**{"mask.text_policy": "nouns"})


def test_reduction_keeps_the_labels_of_the_whole_report():
    cfg = tiny(**{"mask.text_tokens": 6, "mask.text_policy": "findings"})
    tokenizer = build_tokenizer(cfg)
    dataset = build_train_dataset(cfg, tokenizer)
    batch = collate([dataset[i] for i in range(32)])
    plan = step.StepPlan(lr=0.0, image_ratio=0.0, text_tokens=6, text_policy="findings")
    reduced = step.reduce_inputs(dict(batch), plan)
    assert reduced["input_ids"].shape[1] == 6 < batch["input_ids"].shape[1]
    assert reduced["labels"] is batch["labels"]  # the same tensor, untouched
    texts = [dataset.corpus.texts[int(dataset.text_index[i])] for i in range(32)]
    whole = torch.from_numpy(np.stack([label_vector(t) for t in texts]))
    assert torch.equal(batch["labels"].nan_to_num(9), whole.nan_to_num(9))
    # the kept text alone would label differently: the targets are not the tower's input's
    kept = [tokenizer.decode(r[m.bool()], skip_special_tokens=True) for r, m in
            zip(reduced["input_ids"], reduced["attention_mask"], strict=True)]  # fmt: skip
    short = torch.from_numpy(np.stack([label_vector(t) for t in kept]))
    assert not torch.equal(short.nan_to_num(9), whole.nan_to_num(9))


def test_findings_policy_ranks_sentences_by_their_chexpert_findings():
    text = "The lungs are clear. No pneumothorax. There is a large right pleural effusion."
    starts, ranks = tb.sentence_ranks(text)
    assert ranks == [0, 1, 2] and starts[0] == 0
    cfg = tiny()
    tok = build_tokenizer(cfg)
    ids = tok([text], padding="max_length", truncation=True, max_length=64, return_tensors="np")
    prio = tb.finding_priority([text], tok, 64, ids["input_ids"])
    batch = {
        "input_ids": torch.from_numpy(ids["input_ids"]).long(),
        "attention_mask": torch.from_numpy(ids["attention_mask"]).long(),
        tb.PRIORITY_KEY: torch.from_numpy(prio),
    }
    out = tb.reduce_batch(batch, 10, "findings")
    kept = tok.decode(out["input_ids"][0], skip_special_tokens=True)
    assert kept == "there is a large right pleural effusion."


def test_low_resolution_tower_matches_timms_dynamic_img_size():
    """Positions resampled as timm's own `dynamic_img_size` ViT does (reference computed
    by timm with the same weights)."""
    from timm.models.vision_transformer import VisionTransformer

    cfg = tiny()
    torch.manual_seed(0)
    tower = ImageTower(cfg).eval()
    m = cfg.model
    ref = VisionTransformer(
        img_size=32, patch_size=8, in_chans=1, num_classes=0, embed_dim=m.image_width,
        depth=m.image_depth, num_heads=m.image_heads, dynamic_img_size=True,
    ).eval()  # fmt: skip
    ref.load_state_dict(tower.vit.state_dict())
    images = resize_images(torch.randn(3, 1, 32, 32), 16)
    assert images.shape[-1] == 16
    with torch.no_grad():
        ours = tower(images, 0.0).latent  # [N, 1+4, W]
        theirs = ref.forward_features(images)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert torch.equal(resize_images(images, 16), images)  # own size: a no-op


def test_full_size_tuning_restores_patches_text_and_size():
    cfg = tiny(**{"mask.text_tokens": 8, "data.train_image_size": 16, "mask.image_ratio": 0.0})
    assert schedule.reduces_inputs(cfg) and schedule.tune_share(cfg) > 0
    assert not schedule.reduces_inputs(tiny(**{"mask.image_ratio": 0.0}))
    seen = []
    real = step.reduce_inputs

    def spy(batch, plan):
        out = real(batch, plan)
        seen.append((tuple(out["image"].shape[-2:]), out["input_ids"].shape[1], plan.image_ratio))
        return out

    step.reduce_inputs = spy
    try:
        engine.fit(apply_overrides(cfg, {"mask.unmasked_tune_share": 0.34}))
    finally:
        step.reduce_inputs = real
    assert seen[0][:2] == ((16, 16), 8)
    assert seen[-1][0] == (32, 32) and seen[-1][1] > 8  # the last steps read everything
    assert [s[0] for s in seen].count((32, 32)) == 2  # 6 steps, the last 34 %: 2 steps


def _eval_inputs(cfg, monkeypatch):
    """Every tensor the evaluation feeds the encoders, for a run of `cfg`."""
    from medflip.models.medflip import MedFLIP

    seen = []
    image, text = MedFLIP.encode_image, MedFLIP.encode_text
    monkeypatch.setattr(MedFLIP, "encode_image", lambda s, x: seen.append(x) or image(s, x))
    monkeypatch.setattr(
        MedFLIP, "encode_text", lambda s, i, m: seen.extend([i, m]) or text(s, i, m)
    )
    engine.fit(cfg)
    monkeypatch.undo()
    return seen


def test_a_reduced_run_and_a_full_run_share_the_evaluation_exactly(monkeypatch):
    full = _eval_inputs(tiny(**{"optim.max_steps": 2}), monkeypatch)
    reduced_cfg = tiny(**{"optim.max_steps": 2, "mask.text_tokens": 4, "data.train_image_size": 16})
    reduced = _eval_inputs(reduced_cfg, monkeypatch)
    assert len(full) == len(reduced) > 0
    assert all(torch.equal(a, b) for a, b in zip(full, reduced, strict=True))
    assert {tuple(x.shape[-2:]) for x in full if x.ndim == 4} == {(32, 32)}


def test_resume_restores_the_policys_random_state(tmp_path):
    """Steps 3-5 draw the same kept tokens whether the run went straight through or
    resumed from its step-3 checkpoint (torch's RNG state is in the checkpoint)."""
    cfg = tiny(**{"mask.text_tokens": 0.5, "mask.text_policy": "random"})
    drawn = []
    real = tb.reduce_batch

    def spy(*args, **kw):
        out = real(*args, **kw)
        drawn.append(out["input_ids"].clone())
        return out

    step.reduce_batch = spy
    try:
        engine.fit(cfg)
        straight, drawn[:] = list(drawn), []
        saved = {}

        def keep(metrics, ckpt):
            if ckpt:
                import shutil

                shutil.copytree(ckpt, tmp_path / f"s{metrics['step']}", dirs_exist_ok=True)
                saved["dir"] = str(tmp_path / f"s{metrics['step']}")

        engine.fit(apply_overrides(cfg, {"optim.max_steps": 3}), report=keep)
        assert os.path.basename(saved["dir"]) == "s3"
        drawn[:] = []
        engine.fit(cfg, resume_from=saved["dir"])
    finally:
        step.reduce_batch = real
    assert len(drawn) == 3
    assert all(torch.equal(a, b) for a, b in zip(straight[3:], drawn, strict=True))
    assert not torch.equal(straight[3], straight[4])  # the draws do vary step to step


def test_flops_count_the_kept_tokens_and_pixels_only():
    cfg = tiny(**{"mask.text_tokens": 8, "data.train_image_size": 16})
    h, layers, inter, e = 128, 2, 512, cfg.model.embed_dim  # scratch-mini, by hand
    text8 = layers * (8 * (4 * h * h + 2 * h * inter) + 2 * 8 * 8 * h) + h * e
    assert flops.text_macs(cfg, 8) == text8
    w, d = cfg.model.image_width, cfg.model.image_depth  # 16 px / 8 = 4 patches, keep 2
    image16 = 4 * 64 * w + d * (3 * 12 * w * w + 2 * 9 * w) + w * e
    assert flops.image_macs(cfg, 0.5, 16) == image16
    kept = tb.kept_lengths(torch.tensor([30, 5, 64]), 8).tolist()  # what a step encodes
    assert kept == [8, 5, 8]
    assert [flops.text_macs(cfg, k) for k in kept] == [text8, flops.text_macs(cfg, 5), text8]


def test_amdahl_table_reproduces_the_issues_figures():
    """open_clip's profile: ViT-B/16 @ 224 35 GFLOPs, BERT-base 13/22/46 at 77/128/256."""
    rows = flops.amdahl_rows(variants.get("paper"))
    assert [r["text_gflops"] for r in rows] == pytest.approx([13, 22, 46], abs=0.5)
    assert rows[0]["image_gflops"] == pytest.approx(35, abs=0.5)
    assert [r["speedup"] for r in rows] == pytest.approx([2.2, 1.85, 1.48], abs=0.011)
    assert [r["text_share"] for r in rows] == pytest.approx([0.61, 0.72, 0.84], abs=0.006)
