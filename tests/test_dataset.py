"""Tokenizer, pretraining pairs and the resumable loader."""

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch
from fixtures_data import make_mimic, write_corrupt, write_csv, write_image

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import dataset as D
from medflip.data import sources
from medflip.data.corpus import IMAGE_MEAN, IMAGE_STD, records_corpus
from medflip.data.labels import OBSERVATIONS
from medflip.data.prompts import prompt_corpus
from medflip.data.synthetic import SyntheticCXR
from medflip.data.tokenizer import corpus_tokenizer


@pytest.fixture(scope="module", autouse=True)
def cache(module_medflip_cache):
    return module_medflip_cache


@pytest.fixture(scope="module")
def tiny():
    cfg = variants.get("tiny")
    return cfg, D.build_tokenizer(cfg)


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_round_trips_and_has_bert_specials(tiny):
    _, tok = tiny
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    for text in (
        "Moderate left basilar atelectasis.",
        "small right pleural effusion",
        *prompt_corpus()[::40],
    ):
        enc = tok(text, padding="max_length", truncation=True, max_length=64)
        ids = enc["input_ids"]
        assert ids[0] == tok.cls_token_id and tok.unk_token_id not in ids
        assert ids[sum(enc["attention_mask"]) - 1] == tok.sep_token_id and ids[-1] == 0
        assert (
            tok.decode(ids, skip_special_tokens=True).replace(" .", ".").replace(" ,", ",")
            == text.lower()
        )


def test_tokenizer_is_cached_by_corpus_and_safe_to_build_concurrently(cache):
    texts = [f"finding number {k} in the left lung" for k in range(50)]
    a = corpus_tokenizer(texts, 120, 16)
    files = {f for f in os.listdir(cache) if f.startswith("tokenizer-") and f.endswith(".json")}
    b = corpus_tokenizer(texts, 120, 16)
    assert a.get_vocab() == b.get_vocab()
    assert {
        f for f in os.listdir(cache) if f.startswith("tokenizer-") and f.endswith(".json")
    } == files  # reused, not rebuilt
    other = corpus_tokenizer(texts + ["pneumothorax"] * 20, 120, 16)
    assert "pneumothorax" in other.get_vocab() and "pneumothorax" not in a.get_vocab()
    ctx = mp.get_context("fork")
    fresh = [f"report {k} says edema" for k in range(40)]
    with ctx.Pool(2) as pool:  # two workers race to build the same entry
        vocabs = pool.starmap(_vocab, [(fresh,), (fresh,)])
    assert vocabs[0] == vocabs[1] == _vocab(fresh)
    assert not [f for f in os.listdir(cache) if f.startswith(".tmp-")]


def _vocab(texts):
    return sorted(corpus_tokenizer(texts, 110, 16).get_vocab().items())


# ---------------------------------------------------------------- dataset items


def test_items_are_normalised_images_and_impression_findings_text(tiny):
    cfg, tok = tiny
    ds = D.build_train_dataset(cfg, tok)
    assert len(ds) == cfg.data.num_train and ds.paired.all()
    item = ds[3]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    for key in ("input_ids", "attention_mask"):
        assert item[key].shape == (cfg.data.max_text_len,) and item[key].dtype == torch.long
    assert item["labels"].shape == item["image_labels"].shape == (14,)
    j = int(ds.image_index[3])
    ref = SyntheticCXR(cfg.data.seed, cfg.data.num_train, 32)[j]
    pixels = item["image"][0].numpy() * IMAGE_STD + IMAGE_MEAN
    assert np.abs(pixels - ref["image"]).max() <= 0.5 / 255 + 1e-6  # uint8 cache, else same
    # the image side of the soft targets is its own report's labels, as on real data
    np.testing.assert_array_equal(item["image_labels"].numpy(), ref["labels"])
    np.testing.assert_array_equal(item["labels"].numpy(), ref["labels"])
    text = tok.decode(item["input_ids"], skip_special_tokens=True)
    impression = ref["report"].split("IMPRESSION:")[1].split()[0].lower()
    assert text.startswith(impression) and "indication" not in text
    batch = D.collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 1, 32, 32) and batch["paired"].dtype == torch.bool


def test_soft_target_labels_come_from_the_report_text_never_the_generator_truth(tiny):
    """The synthetic generator knows what each image shows; training must not: both sides
    of the soft targets come from report text (the truth is for evaluation sets only).
    Under the impression-only policy the text side is relabelled, the image side keeps its
    study's report labels -- what records_corpus does with a real dataset's label table."""
    cfg, tok = tiny
    ds = D.build_train_dataset(cfg, tok)
    data = SyntheticCXR(cfg.data.seed, cfg.data.num_train)
    reports = np.stack([labels for _, labels in data.reports(range(cfg.data.num_train))])
    truth = np.stack([data[i]["truth"]["labels"] for i in range(cfg.data.num_train)])
    image_side = ds.image_labels.numpy()[ds.image_index]
    np.testing.assert_array_equal(image_side, reports[ds.image_index])
    differs = ~((truth == reports) | (np.isnan(truth) & np.isnan(reports))).all(axis=1)
    assert differs.mean() > 0.2  # the truth would have been a different signal
    policy = D.build_train_dataset(apply_overrides(cfg, {"data.label_text": "impression"}), tok)
    np.testing.assert_array_equal(policy.image_labels.numpy()[policy.image_index], image_side)
    assert not np.array_equal(np.nan_to_num(policy.labels.numpy(), nan=9), np.nan_to_num(
        ds.labels.numpy(), nan=9))  # fmt: skip


def test_pair_assignment_fraction_paired_and_mismatch():
    img, txt, paired = D.pair_assignment(1000, 0.3, 0.5, seed=1)
    assert len(img) == 300 and paired.sum() == 150
    assert (img[paired] == txt[paired]).all()
    assert (img[~paired] != txt[~paired]).all()
    assert sorted(img[~paired]) == sorted(txt[~paired])  # each unpaired text used once
    small, _, _ = D.pair_assignment(1000, 0.1, 1.0, seed=1)
    assert set(small) <= set(img)  # nested subsets across fractions
    again = D.pair_assignment(1000, 0.3, 0.5, seed=1)
    assert all((a == b).all() for a, b in zip(again, (img, txt, paired), strict=True))
    groups = np.repeat(np.arange(400), 3)[:1000]  # studies of 3 images share one report
    img, txt, paired = D.pair_assignment(1000, 1.0, 0.0, seed=2, groups=groups)
    assert not paired.any() and (groups[img] != groups[txt]).all()
    img, txt, paired = D.pair_assignment(10, 1.0, 0.9, seed=0)
    assert paired.all()  # one leftover cannot be mismatched


def test_dataset_fraction_and_unpaired_items(tiny):
    cfg, tok = tiny
    cfg = apply_overrides(cfg, {"data.fraction": 0.5, "data.paired": 0.25})
    ds = D.build_train_dataset(cfg, tok)
    assert len(ds) == 256 and int(ds.paired.sum()) == 64
    m = int(np.flatnonzero(~ds.paired)[0])
    item = ds[m]
    i, t = int(ds.image_index[m]), int(ds.text_index[m])
    assert i != t and item["paired"] is False
    assert torch.equal(item["input_ids"], ds.input_ids[t].long())
    np.testing.assert_array_equal(item["labels"].numpy(), ds.corpus.labels[t])
    np.testing.assert_array_equal(item["image_labels"].numpy(), ds.corpus.image_labels[i])


# ---------------------------------------------------------------- loader


def _batches(loader):
    return [(b["input_ids"], b["image"]) for b in loader]


def test_loader_deterministic_resumable_and_sharded(tiny):
    cfg, tok = tiny
    ds = D.build_train_dataset(apply_overrides(cfg, {"data.fraction": 0.25}), tok)  # 128
    full = _batches(D.make_loader(ds, 16, seed=3, workers=0))
    assert len(full) == 8
    same = _batches(D.make_loader(ds, 16, seed=3, workers=1))  # a worker process: same data
    for a, b in zip(full, same, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    resumed = _batches(D.make_loader(ds, 16, seed=3, workers=0, start_batch=5))
    assert len(resumed) == 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[5:], resumed, strict=True))
    other = _batches(D.make_loader(ds, 16, seed=3, workers=0, epoch=1))
    assert not torch.equal(other[0][0], full[0][0])
    ranks = [
        _batches(D.make_loader(ds, 16, seed=3, workers=0, rank=r, world_size=2)) for r in (0, 1)
    ]
    merged = torch.cat([ranks[0][2][0], ranks[1][2][0]])
    assert sorted(map(tuple, merged.tolist())) == sorted(map(tuple, full[2][0].tolist()))
    ordered = _batches(
        D.make_loader(ds, 16, seed=0, workers=0, shuffle=False, drop_last=False, start_batch=1)
    )
    assert torch.equal(ordered[0][0], torch.stack([ds[k]["input_ids"] for k in range(16, 32)]))


# ---------------------------------------------------------------- real sources


def _manifest(tmp_path, n=40, corrupt=(3,)):
    rows = []
    for k in range(n):
        path = tmp_path / "img" / f"{k}.jpg"
        write_corrupt(str(path)) if k in corrupt else write_image(str(path), seed=k)
        cls = ("Cardiomegaly", "Edema")[k % 2]
        rows.append(
            [
                f"img/{k}.jpg",
                f"IMPRESSION: Moderate {cls.lower()}.",
                f"p{k // 2}",
                "train",
                *["1.0" if o == cls else "" for o in OBSERVATIONS],
            ]
        )
    write_csv(
        str(tmp_path / "manifest.csv"),
        ["image_path", "report", "patient_id", "split", *OBSERVATIONS],
        rows,
    )
    return apply_overrides(
        variants.get("tiny"), {"data.source": "manifest", "data.root": str(tmp_path)}
    )


def test_real_corrupt_image_is_skipped_and_counted_lazily(tmp_path):
    records = sources.load_records("manifest", str(_manifest(tmp_path).data.root)).records
    corpus = records_corpus(records, 16, [r.report for r in records])
    n = len(records)
    ds = D.PretrainDataset(
        corpus,
        D.corpus_tokenizer(corpus.texts, 100, 16),
        16,
        np.arange(n),
        np.arange(n),
        np.ones(n, bool),
    )
    item = ds[3]  # image 3 is not a JPEG: pair 4 comes instead
    assert torch.equal(item["input_ids"], ds.input_ids[4].long())
    assert ds.skipped.counts == {"unreadable image": 1}
    ds[3]
    assert ds.skipped.counts == {"unreadable image": 1}  # remembered, not re-decoded


def test_real_training_set_excludes_evaluation_patients(tmp_path):
    cfg = _manifest(tmp_path, n=200, corrupt=())
    tok = D.build_tokenizer(cfg)
    ds = D.build_train_dataset(cfg, tok)
    train, held = sources.partition(sources.cached_records("manifest", cfg.data.root).records)
    assert held and len(ds) == len(train)  # held-out patients exist and are not trained on
    assert not {r.patient_id for r in train} & {r.patient_id for r in held}
    assert ds[0]["image"].shape == (1, 32, 32)


def test_mimic_corrupt_jpg_is_skipped_when_loaded(tmp_path):
    make_mimic(str(tmp_path / "mimic"))  # 6 good images and one corrupt JPEG
    records = sources.load_records("mimic-cxr", str(tmp_path / "mimic")).records
    corpus = records_corpus(records, 16, [r.report for r in records])
    n = len(records)
    ds = D.PretrainDataset(
        corpus,
        D.corpus_tokenizer(corpus.texts, 100, 16),
        16,
        np.arange(n),
        np.arange(n),
        np.ones(n, bool),
    )
    batch = next(iter(D.make_loader(ds, n, seed=0, workers=0)))
    assert batch["image"].shape == (n, 1, 16, 16) and torch.isfinite(batch["image"]).all()
    assert ds.skipped.counts == {"unreadable image": 1}
