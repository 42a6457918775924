"""Evaluation sets and class prompts."""

import os

import numpy as np
import pytest
import torch
from fixtures_data import write_corrupt, write_csv, write_image

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import eval_sets as B
from medflip.data.corpus import IMAGE_MEAN, IMAGE_STD
from medflip.data.labels import OBSERVATIONS, extract_labels, label_vector
from medflip.data.prompts import (
    CLASSES,
    all_prompts,
    class_prompts,
    labels_to_text,
    prompt_corpus,
)
from medflip.data.synthetic import SyntheticCXR, truth

PER_CLASS = 10
IDX = {n: k for k, n in enumerate(OBSERVATIONS)}


@pytest.fixture(scope="module", autouse=True)
def cache(module_medflip_cache):
    return module_medflip_cache


@pytest.fixture(scope="module")
def synthetic_sets():
    cfg = apply_overrides(variants.get("tiny"), {"data.eval_per_class": PER_CLASS})
    return cfg, B.build_eval_sets(cfg)


def _index(pid: str) -> int:
    return int(pid.rsplit("-p", 1)[1])  # "syn0-p10000123" -> 10000123


def test_synthetic_sets_shapes_and_balance(synthetic_sets):
    cfg, sets = synthetic_sets
    size = cfg.data.image_size
    for name in ("fiveclass", "probe_train", "probe_test"):
        images, targets = getattr(sets, f"{name}_images"), getattr(sets, f"{name}_targets")
        per = PER_CLASS if name == "fiveclass" else B.probe_per_class(PER_CLASS)
        assert images.shape == (5 * per, 1, size, size) and images.dtype == torch.float32
        assert targets.dtype == torch.long
        assert torch.bincount(targets, minlength=5).tolist() == [per] * 5
    assert torch.bincount(sets.binary_targets).tolist() == [PER_CLASS] * 2
    assert torch.bincount(sets.retrieval_sentence_classes).tolist() == [PER_CLASS] * 5
    assert len(sets.retrieval_sentences) == 5 * PER_CLASS
    assert sets.retrieval_images is sets.fiveclass_images  # the paper's retrieval images


def test_synthetic_fiveclass_images_show_exactly_their_class(synthetic_sets):
    cfg, sets = synthetic_sets
    data = SyntheticCXR(cfg.data.seed, B.EVAL_OFFSET * 2, cfg.data.image_size)
    for name in ("fiveclass", "probe_train", "probe_test"):
        targets = getattr(sets, f"{name}_targets")
        for pid, t in zip(sets.patient_ids[name], targets.tolist(), strict=True):
            labels = truth(data.study(_index(pid)))["labels"]
            assert [labels[IDX[c]] for c in CLASSES] == [float(k == t) for k in range(5)]
    for pid, t in zip(sets.patient_ids["binary"], sets.binary_targets.tolist(), strict=True):
        labels = truth(data.study(_index(pid)))["labels"]
        assert labels[IDX["Consolidation" if t else "No Finding"]] == 1
    k = 7  # pixels are the generator's image (uint8-quantised), normalised like training
    ref = data.images([_index(sets.patient_ids["fiveclass"][k])])[0]
    got = sets.fiveclass_images[k, 0].numpy() * IMAGE_STD + IMAGE_MEAN
    assert np.abs(got - ref).max() <= 0.5 / 255 + 1e-6


def test_synthetic_sets_disjoint_from_training_and_each_other(synthetic_sets):
    cfg, sets = synthetic_sets
    ids = {name: {_index(p) for p in pids} for name, pids in sets.patient_ids.items()}
    assert all(min(v) >= B.EVAL_OFFSET > cfg.data.num_train for v in ids.values())
    names = list(ids)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert not ids[names[a]] & ids[names[b]]
    with pytest.raises(ValueError, match="data.num_train"):
        B.build_eval_sets(apply_overrides(cfg, {"data.num_train": B.EVAL_OFFSET + 1}))


def test_retrieval_sentences_carry_one_class(synthetic_sets):
    _, sets = synthetic_sets
    for sentence, k in zip(
        sets.retrieval_sentences, sets.retrieval_sentence_classes.tolist(), strict=True
    ):
        found = extract_labels(sentence)
        assert [found[c] == 1.0 for c in CLASSES] == [j == k for j in range(5)], sentence
        assert "INDICATION" not in sentence and "IMPRESSION" not in sentence


def test_eval_sets_cached_in_memory_and_on_disk(synthetic_sets, cache):
    cfg, sets = synthetic_sets
    assert B.build_eval_sets(cfg) is sets
    assert [f for f in os.listdir(cache) if f.startswith("evalsets-") and f.endswith(".npz")]
    B._cached.cache_clear()
    again = B.build_eval_sets(cfg)
    assert again is not sets and torch.equal(again.probe_test_images, sets.probe_test_images)
    assert again.retrieval_sentences == sets.retrieval_sentences


# ---------------------------------------------------------------- selection rules


def test_fiveclass_and_binary_targets_exclude_uncertain_and_mixed():
    nan = np.full(14, np.nan, np.float32)

    def vec(**values):
        out = nan.copy()
        for name, v in values.items():
            out[IDX[name.replace("_", " ")]] = v
        return out

    assert B.fiveclass_target(vec(Edema=1, Cardiomegaly=0)) == CLASSES.index("Edema")
    assert B.fiveclass_target(vec(Edema=1, Atelectasis=-1)) is None  # uncertain sibling
    assert B.fiveclass_target(vec(Edema=1, Atelectasis=1)) is None
    assert B.fiveclass_target(vec(Edema=1, Support_Devices=1)) == CLASSES.index("Edema")
    assert B.binary_target(vec(Consolidation=1)) == 1
    assert B.binary_target(vec(No_Finding=1)) == 0
    assert B.binary_target(vec(Edema=1)) is None


# ---------------------------------------------------------------- prompts


def test_class_prompts_are_deterministic_and_distinct():
    a = class_prompts("Atelectasis", 8, seed=0)
    assert a == class_prompts("Atelectasis", 8, seed=0) and len(set(a)) == 8
    assert a != class_prompts("Atelectasis", 8, seed=1)
    assert all("atelectasis" in p for p in a)
    for cls in CLASSES:  # every prompt reads as its class (only) to the report labeler
        for p in all_prompts(cls):
            found = extract_labels(p)
            assert [found[c] == 1.0 for c in CLASSES] == [c == cls for c in CLASSES], p
    for p in all_prompts("No Finding"):
        assert extract_labels(p)["No Finding"] == 1.0, p
    cfg = variants.get("tiny")
    five, binary = B.eval_prompts(cfg)
    assert len(five) == 5 and all(len(p) == cfg.eval.prompts_per_class for p in five)
    assert binary[1] == class_prompts("Consolidation", cfg.eval.prompts_per_class, 0)
    assert len(set(prompt_corpus())) == len(prompt_corpus()) > 300
    with pytest.raises(ValueError, match="Pneumothorax"):
        class_prompts("Pneumothorax", 2)


def test_labels_to_text_reads_back_as_its_labels():
    labels = np.full(14, np.nan, np.float32)
    labels[IDX["Cardiomegaly"]], labels[IDX["Pleural Effusion"]] = 1, 1
    text = labels_to_text(labels, key=5)
    found = label_vector(text)
    assert found[IDX["Cardiomegaly"]] == 1 and found[IDX["Pleural Effusion"]] == 1
    assert labels_to_text(labels, key=5) == text
    normal = labels_to_text(np.full(14, np.nan, np.float32), key=1)
    assert not any(extract_labels(normal)[c] == 1.0 for c in CLASSES)


# ---------------------------------------------------------------- real sources


def _manifest(root, per_class=4, corrupt=0, kinds=(*CLASSES, "No Finding")):
    rows = []
    for k in range(per_class * len(kinds)):
        cls = kinds[k % len(kinds)]
        name = f"img/{k}.png"
        write_corrupt(os.path.join(root, name)) if k == corrupt else write_image(
            os.path.join(root, name), seed=k
        )
        report = (
            f"IMPRESSION: Moderate {cls.lower()}."
            if cls != "No Finding"
            else "IMPRESSION: No acute cardiopulmonary process."
        )
        rows.append(
            [name, report, f"p{k}", "test", *["1.0" if o == cls else "" for o in OBSERVATIONS]]
        )
    write_csv(
        os.path.join(root, "manifest.csv"),
        ["image_path", "report", "patient_id", "split", *OBSERVATIONS],
        rows,
    )


def test_real_source_sets_skip_corrupt_images(tmp_path):
    _manifest(str(tmp_path))
    cfg = apply_overrides(
        variants.get("tiny"),
        {"data.source": "manifest", "data.root": str(tmp_path), "data.eval_per_class": 1},
    )
    sets = B.build_eval_sets(cfg)
    assert sorted(sets.fiveclass_targets.tolist()) == [0, 1, 2, 3, 4]
    assert sorted(sets.binary_targets.tolist()) == [0, 1]
    picked = {p for n in ("fiveclass", "probe_train", "probe_test") for p in sets.patient_ids[n]}
    assert len(picked) == 15 and "p0" not in picked  # image 0 is corrupt: another was taken
    for sentence, k in zip(
        sets.retrieval_sentences, sets.retrieval_sentence_classes.tolist(), strict=True
    ):
        assert extract_labels(sentence)[CLASSES[k]] == 1.0


def test_real_source_without_reports_or_candidates(tmp_path):
    _manifest(str(tmp_path))
    rows = open(tmp_path / "manifest.csv").read().splitlines()
    no_reports = [",".join(c for k, c in enumerate(r.split(",")) if k != 1) for r in rows]
    (tmp_path / "manifest.csv").write_text("\n".join(no_reports) + "\n")
    cfg = apply_overrides(
        variants.get("tiny"),
        {"data.source": "manifest", "data.root": str(tmp_path), "data.eval_per_class": 1},
    )
    sets = B.build_eval_sets(cfg)  # no reports: retrieval sentences are class prompts
    assert sets.retrieval_sentences == [class_prompts(c, 1, 0)[0] for c in CLASSES]
    only = tmp_path / "only"
    _manifest(str(only), kinds=("Cardiomegaly", "Edema"))
    cfg = apply_overrides(cfg, {"data.root": str(only)})
    with pytest.raises(B.sources.SourceError, match="binary"):
        B.build_eval_sets(cfg)


def test_zero_shot_prompts_never_write_training_captions():
    # On a label-only source the captions come from labels_to_text: no prompt may be one.
    from medflip.data.prompts import PROMPT_WORDS, caption_templates, prompt_templates

    captions = set()
    rng = np.random.default_rng(0)
    for key in range(400):
        labels = np.where(rng.random(14) < 0.2, 1.0, np.nan).astype(np.float32)
        captions.update(s.strip(". ").lower() for s in labels_to_text(labels, key).split(". "))
    for cls in PROMPT_WORDS:
        prompts = set(prompt_templates(cls))
        assert prompts.isdisjoint(caption_templates(cls)) and prompts.isdisjoint(captions)
        assert set(class_prompts(cls, 50)) <= prompts
