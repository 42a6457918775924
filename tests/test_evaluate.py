"""Evaluation metrics against brute-force references and hand-worked examples."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import eval_sets as benchmark
from medflip.data.dataset import build_tokenizer
from medflip.data.eval_sets import val_test_split
from medflip.evaluation import evaluate as ev
from medflip.evaluation import items
from medflip.models.medflip import MedFLIP
from medflip.results import table as results


def test_precision_at_k_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(13, 6, generator=gen), dim=-1)
    g = F.normalize(torch.randn(29, 6, generator=gen), dim=-1)
    qc, gc = torch.randint(0, 3, (13,), generator=gen), torch.randint(0, 3, (29,), generator=gen)
    got = ev.precision_at_k(q, g, qc, gc)
    for k in (1, 2, 5, 10):
        per_query = []
        for i in range(13):
            sims = [(float(q[i] @ g[j]), j) for j in range(29)]
            top = [j for _, j in sorted(sims, reverse=True)[:k]]
            per_query.append(sum(int(gc[j] == qc[i]) for j in top) / k)
        assert abs(got[k] - sum(per_query) / 13) < 1e-6


def test_precision_at_k_hand_example():
    # Two queries, three gallery items on a line: query 0 is closest to item 0 (same class).
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    got = ev.precision_at_k(q, g, torch.tensor([0, 1]), torch.tensor([0, 1, 0]), ks=(1, 2))
    # q0: top1 item0 (hit), top2 item0,item1 (1/2). q1: top1 item2 (miss), top2 item2,item1 (1/2).
    assert got[1] == 0.5 and got[2] == 0.5


def test_macro_f1_hand_example():
    pred, target = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1])
    # class0: tp1 fp1 fn0 -> 2/3; class1: tp1 fp0 fn2 -> 0.5; class2: tp0 -> 0
    assert abs(ev.macro_f1(pred, target, 3) - (2 / 3 + 0.5 + 0) / 3) < 1e-9


def test_class_embeddings_is_normalised_prompt_mean():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 0.0]])
    cls = ev.class_embeddings(text, prompts_per_class=2)
    assert torch.allclose(cls[0], torch.tensor([2**-0.5, 2**-0.5]))
    assert torch.allclose(cls[1], torch.tensor([1.0, 0.0]))
    assert ev.zero_shot(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), cls).tolist() == [1, 0]


def test_prompt_ensembles_logits_as_medclip_and_embeddings_as_clip_against_loops():
    """logits: mean over a class's prompts of cos(image, prompt), computed element by element
    here; embeddings: cos with the renormalised mean prompt. A class whose prompts spread
    unevenly ranks differently under the two: the toy below is built so they disagree."""
    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(40, 6, generator=gen), dim=-1)
    prompts = torch.nn.functional.normalize(torch.randn(3 * 4, 6, generator=gen), dim=-1)
    got = ev.class_scores(img, prompts, 4, "logits")
    for n in range(40):
        for c in range(3):
            cos = [float(img[n] @ prompts[c * 4 + k]) for k in range(4)]
            assert got[n, c].item() == pytest.approx(sum(cos) / 4, abs=1e-6)
    emb = ev.class_scores(img, prompts, 4, "embeddings")
    assert torch.allclose(emb, img @ ev.class_embeddings(prompts, 4).T)
    # the mean of logits is the cosine with the *un*normalised mean: rankings differ where
    # the classes' mean prompt embeddings have different norms (uneven spread)
    norms = prompts.view(3, 4, 6).mean(1).norm(dim=-1)
    assert torch.allclose(got, emb * norms, atol=1e-6)
    assert (got.argmax(1) != emb.argmax(1)).any()


def test_linear_probe_learns_separable_and_is_chance_on_noise():
    gen = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 16, generator=gen) * 3
    y = torch.randint(0, 4, (400,), generator=gen)
    x = centers[y] + torch.randn(400, 16, generator=gen)
    assert ev.linear_probe(x[:300], y[:300], x[300:], y[300:], 4) > 0.95
    noise = torch.randn(400, 16, generator=gen)
    assert ev.linear_probe(noise[:300], y[:300], noise[300:], y[300:], 4) < 0.45


def test_auroc_matches_pairwise_count_with_ties():
    gen = torch.Generator().manual_seed(2)
    score = torch.randint(0, 6, (41,), generator=gen).float()  # many ties
    target = torch.randint(0, 2, (41,), generator=gen)
    pos, neg = score[target == 1], score[target == 0]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    assert abs(ev.binary_auroc(score, target) - sum(pairs) / len(pairs)) < 1e-12
    assert math.isnan(ev.binary_auroc(score, torch.ones(41, dtype=torch.long)))


def test_balanced_accuracy_ignores_class_balance():
    target = torch.tensor([0] * 5 + [1] * 3)  # the 5:3 set a constant predictor scored 0.625 on
    constant = torch.zeros(8, dtype=torch.long)
    assert ev.accuracy(constant, target) == 0.625
    assert ev.balanced_accuracy(constant, target, 2) == 0.5
    pred = torch.tensor([0, 0, 0, 0, 1, 1, 1, 0])  # recalls 4/5 and 2/3
    assert abs(ev.balanced_accuracy(pred, target, 2) - (0.8 + 2 / 3) / 2) < 1e-6


def test_val_test_split_is_disjoint_and_class_balanced():
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 2])
    val, test = val_test_split(targets)
    assert set(val.tolist()).isdisjoint(test.tolist())
    assert sorted(val.tolist() + test.tolist()) == list(range(len(targets)))
    for c in (0, 1, 2):
        assert abs(int((targets[val] == c).sum()) - int((targets[test] == c).sum())) <= 1


def test_items_pack_round_trips_and_refuses_oversized_cells():
    bits = np.random.default_rng(0).random(1000) < 0.4
    text = items.pack(bits)
    assert len(text) <= 512 and (items.unpack(text) == bits).all()
    assert items.pack(np.ones(5000, bool)) is None


@pytest.fixture(scope="module")
def tiny_eval():
    cfg = variants.get("tiny")
    tok = build_tokenizer(cfg)
    torch.manual_seed(0)
    model = MedFLIP(
        cfg,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        mask_token_id=tok.mask_token_id,
        special_token_ids=tok.all_special_ids,
    )
    sets, prompts = benchmark.build_eval_sets(cfg), benchmark.eval_prompts(cfg)
    got = ev.evaluate(model, tok, sets, cfg, torch.device("cpu"), prompts, probe=False)
    return cfg, tok, model, sets, prompts, got


def test_evaluate_reports_val_and_test_from_disjoint_halves(tiny_eval):
    cfg, tok, model, sets, prompts, got = tiny_eval
    model.eval()
    five = prompts[0]
    texts = ev.encode_texts(
        model,
        tok,
        [p for ps in five for p in ps],
        cfg.data.max_text_len,
        64,
        torch.device("cpu"),
        "fp32",
    )
    img = ev.encode_images(model, sets.fiveclass_images, 64, torch.device("cpu"), "fp32")
    val, test = val_test_split(sets.fiveclass_targets)
    assert cfg.eval.prompt_ensemble == "logits"  # the default: MedCLIP's protocol
    for idx, name in ((val, "val_zeroshot_acc"), (test, "zeroshot_acc")):
        # recomputed here, one half at a time: the mean over each class's prompt cosines
        pred = (img[idx] @ texts.T).view(len(idx), len(five), -1).mean(-1).argmax(1)
        assert abs(got[name] - (pred == sets.fiveclass_targets[idx]).float().mean().item()) < 1e-6
    correct = items.unpack(got["zeroshot_items"])
    assert len(correct) == len(test) and abs(correct.mean() - got["zeroshot_acc"]) < 1e-6
    n_bin = got["zeroshot_binary_n_pos"] + got["zeroshot_binary_n_neg"]
    assert n_bin == len(val_test_split(sets.binary_targets)[1])
    assert 0 <= got["zeroshot_binary_auroc"] <= 1 and "val_zeroshot_binary_bacc" in got
    assert set(got) <= set(results.METRICS)  # every name lands in a results column


def test_split_prefixes_are_class_balanced():
    targets = torch.tensor([c for c in (0, 1, 2, 3, 4) for _ in range(40)])[torch.randperm(200)]
    for half in val_test_split(targets):
        for n in (5, 10, 35, 100):
            assert torch.bincount(targets[half[:n]], minlength=5).tolist() == [n // 5] * 5


def test_a_curve_point_scores_a_prefix_of_each_half_item_for_item_with_the_full(tiny_eval):
    cfg, tok, model, sets, prompts, full = tiny_eval
    light_cfg = apply_overrides(cfg, {"eval.curve_items": 10, "eval.val_items": 5})
    cpu = torch.device("cpu")
    light = ev.evaluate(model, tok, sets, light_cfg, cpu, prompts, probe=False, full=False)
    bits, full_bits = items.unpack(light["zeroshot_items"]), items.unpack(full["zeroshot_items"])
    assert len(bits) == light["zeroshot_n"] == 10 and (bits == full_bits[:10]).all()
    assert light["zeroshot_acc"] == pytest.approx(full_bits[:10].mean())
    assert "zeroshot_binary_acc" not in light and "retrieval_t2i_p1" not in light
    # the validation prefix, recomputed from embeddings of those five images alone
    model.eval()
    five = prompts[0]
    texts = ev.encode_texts(
        model, tok, [p for ps in five for p in ps], cfg.data.max_text_len, 64, cpu, "fp32"
    )
    val = val_test_split(sets.fiveclass_targets)[0][:5]
    img = ev.encode_images(model, sets.fiveclass_images[val], 64, cpu, "fp32")
    pred = ev.class_scores(img, texts, len(five[0]), cfg.eval.prompt_ensemble).argmax(1)
    want = (pred == sets.fiveclass_targets[val]).float().mean().item()
    assert light["val_zeroshot_acc"] == pytest.approx(want, abs=1e-6)
    # a full evaluation with val_items scores the whole test half but the same val prefix
    both = ev.evaluate(model, tok, sets, light_cfg, cpu, prompts, probe=False, full=True)
    assert both["zeroshot_n"] == full["zeroshot_n"] and both["zeroshot_acc"] == full["zeroshot_acc"]
    assert both["val_zeroshot_acc"] == pytest.approx(want, abs=1e-6)
    assert both["retrieval_t2i_p1"] == full["retrieval_t2i_p1"]
