"""The prepared cache: read once, shards equal to decoding, resumable, used by training."""

import json
import os

import numpy as np
import pytest
from fixtures_data import make_mimic

from medflip import variants
from medflip.config import apply_overrides
from medflip.data import dataset as D
from medflip.data import prepare, prepared, sources


@pytest.fixture
def mimic(tmp_path, monkeypatch, medflip_cache):
    monkeypatch.delenv("MEDFLIP_PREPARED", raising=False)
    root = str(tmp_path / "mimic")
    make_mimic(root)  # 6 images + 1 corrupt
    cfg = apply_overrides(
        variants.get("tiny"),
        {"data.source": "mimic-cxr", "data.root": root, "optim.batch_size": 2},
    )
    return cfg


def test_shards_equal_decoding_and_training_reads_them(mimic):
    cfg = mimic
    summary = prepare.prepare(cfg, workers=2)
    assert summary["images"] == 7 and summary["undecodable"] == 1
    assert summary["skipped"] == {"missing image": 1}
    loaded = sources.cached_records("mimic-cxr", cfg.data.root, cfg.data.label_text)
    assert all(r.prepared == summary["entry"] for r in loaded.records)  # no source re-read
    direct = sources.load_records("mimic-cxr", cfg.data.root)
    assert [r.image_path for r in loaded.records] == [r.image_path for r in direct.records]
    for a, b in zip(loaded.records, direct.records, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.report == b.report and a.split == b.split
    corpus = D.train_corpus(cfg)
    assert isinstance(corpus.pixels, prepared.Pixels)
    for i, path in enumerate(corpus.paths):
        try:
            want = np.rint(sources.read_image(path, cfg.data.image_size) * 255) / 255
        except sources.ImageError:
            with pytest.raises(sources.ImageError, match="bad.jpg"):
                corpus.image(i)
            continue
        np.testing.assert_allclose(corpus.image(i), want, atol=1e-6)  # [H, W]
    tok = D.build_tokenizer(cfg)
    ids = tok(
        corpus.texts,
        padding="max_length",
        truncation=True,
        max_length=cfg.data.max_text_len,
        return_tensors="np",
    )["input_ids"]
    cached = [f for f in os.listdir(summary["entry"]) if f.startswith("tokens-")]
    assert len(cached) == 1  # tokenised at prepare time with the experiment's tokenizer
    ds = D.build_train_dataset(cfg, tok)
    np.testing.assert_array_equal(ds.input_ids.numpy(), ids)


def test_a_rerun_decodes_only_unfinished_shards(mimic, monkeypatch):
    monkeypatch.setattr(prepared, "SHARD", 2)  # 7 images -> 4 shards
    cfg = mimic
    first = prepare.prepare(cfg, workers=1)
    assert first["shards"] == 4 and first["decoded_this_run"] == 7
    images = prepared.images_dir(first["entry"], cfg.data.image_size)
    kept = os.path.getmtime(prepared.shard_path(images, 0, "npy"))
    os.remove(prepared.shard_path(images, 2, "json"))  # as if killed while writing shard 2
    os.remove(os.path.join(images, "manifest.json"))
    again = prepare.prepare(cfg, workers=1)
    assert again["decoded_this_run"] == 2 and again["undecodable"] == 1
    assert os.path.getmtime(prepared.shard_path(images, 0, "npy")) == kept
    assert (
        prepare.main(
            [
                "--source",
                "mimic-cxr",
                "--root",
                cfg.data.root,
                "--variant",
                "tiny",
                "--workers",
                "1",
                "--set",
                "optim.batch_size=2",
            ]
        )
        == 0
    )
    with open(os.path.join(images, "manifest.json")) as fh:
        assert json.load(fh)["decoded_this_run"] == 0  # finished: nothing to do


def test_bad_root_or_address_here_is_one_line_exit_2(tmp_path, capsys):
    assert prepare.main(["--source", "openi", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.root:") and "\n" not in err
    (tmp_path / "openi").mkdir()
    argv = ["--source", "openi", "--root", str(tmp_path / "openi"), "--address", "auto"]
    assert prepare.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --address: Ray runs from the sweep layer; use python -m medflip.sweep.prepare"
    )


@pytest.mark.slow
def test_ray_tasks_write_the_same_shards(mimic, tmp_path):
    cfg = mimic
    local = prepare.prepare(cfg, workers=1, out=str(tmp_path / "local"))
    from medflip.sweep.prepare import mapper

    on_ray = prepare.prepare(cfg, 1, mapper("local"), out=str(tmp_path / "ray"))
    for summary in (local, on_ray):
        assert summary["images"] == 7 and summary["undecodable"] == 1
    a = prepared.images_dir(local["entry"], cfg.data.image_size)
    b = prepared.images_dir(on_ray["entry"], cfg.data.image_size)
    np.testing.assert_array_equal(
        np.load(prepared.shard_path(a, 0, "npy")), np.load(prepared.shard_path(b, 0, "npy"))
    )


def test_evaluation_images_come_from_the_shards(mimic):
    cfg = mimic
    prepare.prepare(cfg, workers=1)
    loaded = sources.cached_records("mimic-cxr", cfg.data.root)
    rec = next(r for r in loaded.records if r.image_path.endswith("d6.jpg"))
    want = np.rint(sources.read_image(rec.image_path, cfg.data.image_size) * 255) / 255
    np.testing.assert_allclose(sources.load_image(rec, cfg.data.image_size), want, atol=1e-6)
    bad = next(r for r in loaded.records if r.image_path.endswith("bad.jpg"))
    with pytest.raises(sources.ImageError, match="at prepare time"):
        sources.load_image(bad, cfg.data.image_size)
