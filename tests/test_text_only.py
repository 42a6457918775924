"""Reports without an image (text-only rows) enter the medclip soft-target loss; readers
keep such reports; identity-target kinds and the image tower never see them."""

import math
import os

import numpy as np
import torch
from fixtures_batch import make_batch
from fixtures_data import make_mimic, write_csv, write_image

from medflip import variants
from medflip.config import apply_overrides
from medflip.data.dataset import PretrainDataset, collate
from medflip.data.sources import load_records
from medflip.losses.contrastive import MedFLIPLoss, label_targets
from medflip.models.medflip import MedFLIP

HAS_IMAGE = torch.tensor([True, True, False, True, False, True])  # 4 images, 6 texts


def cfg(kind="medclip"):
    return apply_overrides(variants.get("tiny"), {"loss.kind": kind, "optim.precision": "fp32"})


def batch():
    """6 reports, 4 of them with an image."""
    return make_batch(n=len(HAS_IMAGE), image_size=cfg().data.image_size, has_image=HAS_IMAGE)


def reference(v, t, image_labels, text_labels, tau):
    """Eq. 1-5 written out element by element on the N_i x N_t matrices (no softmax calls)."""
    v = [x / x.norm() for x in v]
    t = [x / x.norm() for x in t]

    def cos(a, b):
        na, nb = a.norm(), b.norm()
        return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))

    ni, nt = len(v), len(t)
    s = [[float(v[i] @ t[j]) / tau for j in range(nt)] for i in range(ni)]
    c = [[cos(image_labels[i], text_labels[j]) for j in range(nt)] for i in range(ni)]
    i2t = 0.0
    for i in range(ni):
        z_y = sum(math.exp(c[i][j]) for j in range(nt))
        z_p = sum(math.exp(s[i][j]) for j in range(nt))
        i2t -= sum(math.exp(c[i][j]) / z_y * (s[i][j] - math.log(z_p)) for j in range(nt))
    t2i = 0.0
    for j in range(nt):
        z_y = sum(math.exp(c[i][j]) for i in range(ni))
        z_p = sum(math.exp(s[i][j]) for i in range(ni))
        t2i -= sum(math.exp(c[i][j]) / z_y * (s[i][j] - math.log(z_p)) for i in range(ni))
    return (i2t / ni + t2i / nt) / 2


def model():
    """The tiny MedFLIP in eval mode: no dropout, so two forwards differ only by their rows."""
    torch.manual_seed(0)
    return MedFLIP(cfg(), 100, 0, 1, [0, 1, 2, 3]).eval()


def test_loss_is_eq_1_5_over_every_image_row_and_every_text_row():
    m, b = model(), batch()
    out = m(b, image_ratio=0.0)
    assert out["image_emb"].shape[0] == 4 and out["text_emb"].shape[0] == 6  # N_i x N_t
    got = MedFLIPLoss(cfg())(out, b)["loss_contrastive"]
    has = b["has_image"]
    want = reference(
        out["image_emb"].detach().double(), out["text_emb"].detach().double(),
        label_targets(b["image_labels"][has]).double(), label_targets(b["labels"]).double(),
        float(out["temperature"]),
    )  # fmt: skip
    assert abs(float(got) - want) <= 1e-4 * abs(want)


def text_grads(b):
    m = model()
    MedFLIPLoss(cfg())(m(b, image_ratio=0.0), b)["loss"].backward()
    return torch.cat([p.grad.flatten() for p in m.text.parameters() if p.grad is not None])


def test_text_only_rows_change_the_text_towers_gradient_and_skip_the_image_tower():
    b = batch()
    seen = []
    m = model()
    m.image.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    m(b, image_ratio=0.0)
    assert seen == [4]  # the image tower encodes the 4 images only, no blanks
    with_text_only = text_grads(b)
    keep = b["has_image"]
    without = {k: v if k == "image" else v[keep] for k, v in b.items()}
    rel = (with_text_only - text_grads(without)).norm() / text_grads(without).norm()
    assert rel > 1e-2, float(rel)


def test_identity_target_kinds_ignore_text_only_rows():
    b, m = batch(), model()
    out = m(b, image_ratio=0.0)
    loss = MedFLIPLoss(cfg("clip"))(out, b)["loss_contrastive"]
    from medflip.losses.contrastive import clip_loss

    torch.testing.assert_close(loss, clip_loss(out["image_emb"], out["text_emb"][b["has_image"]],
                                               out["temperature"]))  # fmt: skip


def test_mimic_study_without_image_files_becomes_a_text_only_record(tmp_path):
    root = str(tmp_path / "mimic")
    make_mimic(root)
    for name in os.listdir(os.path.join(root, "files", "p11", "p11000002", "s50000003")):
        os.remove(os.path.join(root, "files", "p11", "p11000002", "s50000003", name))
    loaded = load_records("mimic-cxr", root)
    assert [r.study_id for r in loaded.text_only] == ["50000003"]
    (rec,) = loaded.text_only
    assert rec.image_path == "" and rec.report.startswith("Large left pleural effusion")
    assert rec.split == "train" and rec.text_labels is not None
    assert all(r.image_path for r in loaded.records)
    assert "50000003" not in {r.study_id for r in loaded.records}


def test_manifest_report_without_image_becomes_a_text_only_record(tmp_path):
    write_image(str(tmp_path / "a.png"))
    rows = [
        ["a.png", "IMPRESSION: Cardiomegaly.", "p1"],
        ["", "IMPRESSION: Small left pleural effusion.", "p2"],  # no image_path
        ["gone.png", "IMPRESSION: Edema.", "p3"],  # named but absent: report kept
        ["", "", "p4"],  # neither: skipped
    ]
    write_csv(str(tmp_path / "manifest.csv"), ["image_path", "report", "patient_id"], rows)
    loaded = load_records("manifest", str(tmp_path))
    assert [r.patient_id for r in loaded.records] == ["p1"]
    assert [r.patient_id for r in loaded.text_only] == ["p2", "p3"]
    assert loaded.skipped.counts["missing image"] == 1
    assert loaded.skipped.counts["no image and no report"] == 1


class _Tok:
    def __call__(self, texts, max_length, **_):
        ids = np.array([[len(t) % 50 + 5] * max_length for t in texts])
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def test_dataset_rows_after_the_pairs_are_text_only_and_collate_stacks_real_images():
    from medflip.data.corpus import Corpus

    def corpus(n, pixels):
        labels = np.zeros((n, 14), np.float32)
        return Corpus([f"text {k}" * (k + 1) for k in range(n)], labels, labels,
                      np.arange(n), 8, pixels)  # fmt: skip

    images = corpus(3, np.full((3, 8, 8), 128, np.uint8))
    idx = np.arange(3)
    data = PretrainDataset(images, _Tok(), 8, idx, idx, np.ones(3, bool), corpus(2, None))
    assert len(data) == 5
    b = collate([data[k] for k in range(5)])
    assert b["image"].shape == (3, 1, 8, 8)
    assert b["has_image"].tolist() == [True, True, True, False, False]
    assert b["paired"].tolist() == [True, True, True, False, False]
    assert b["input_ids"].shape == (5, 8)
    assert collate([data[3], data[4]])["image"].shape == (0, 1, 8, 8)
