"""The towers and the dual encoder, on the `tiny` variant (32 px, 16 patches, 1 ViT block)."""

import pytest
import torch
from fixtures_batch import MASK, PAD, SPECIAL, VOCAB, make_batch
from transformers import BertConfig, BertModel

from medflip import variants
from medflip.config import apply_overrides
from medflip.losses.contrastive import MedFLIPLoss, mim_loss
from medflip.models.image import normalized_patches, patchify
from medflip.models.masking import mask_tokens
from medflip.models.medflip import MedFLIP
from medflip.models.text import TextTower


def make_cfg(**overrides):
    return apply_overrides(variants.get("tiny"), overrides)


def make_model(cfg=None, seed=0):
    torch.manual_seed(seed)
    return MedFLIP(cfg or make_cfg(), VOCAB, PAD, MASK, SPECIAL)


def test_forward_shapes_with_both_masking_variants():
    model = make_model(make_cfg(**{"mask.variant": "both", "loss.svd_weight": 0.1}))
    out = model(make_batch(), image_ratio=0.5, text_ratio=0.15)
    assert out["image_emb"].shape == out["text_emb"].shape == (4, 16)
    assert torch.allclose(out["image_emb"].norm(dim=-1), torch.ones(4))
    assert out["image_tokens"].shape == (4, 8, 16)  # 16 patches, half kept
    assert out["text_tokens"].shape == (4, 12, 16) and out["text_token_mask"].shape == (4, 12)
    assert out["mim_pred"].shape == out["mim_target"].shape == (4, 16, 64)
    assert out["mim_mask"].sum(dim=1).tolist() == [8.0] * 4
    assert out["mlm_logits"].shape == (out["mlm_labels"].shape[0], VOCAB)
    assert (out["mlm_labels"] >= 5).all()  # only real, non-special tokens are predicted
    assert out["temperature"].item() == pytest.approx(0.07)
    assert "image_tokens" not in make_model()(make_batch(), 0.5)  # no SVD term: not computed


def test_text_token_mask_excludes_specials_and_padding():
    batch = make_batch()
    out = make_model()(batch, 0.0)
    want = batch["attention_mask"].bool() & (batch["input_ids"] > MASK)
    assert torch.equal(out["text_token_mask"], want)


def test_masked_encoder_runs_only_kept_tokens():
    model = make_model()
    seen = []
    model.image.vit.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    for ratio, kept in ((0.0, 16), (0.5, 8), (0.75, 4), (0.9, 2)):
        model(make_batch(), ratio)
        assert seen[-1] == 1 + kept  # cls + visible patches


def test_ratio_zero_equals_timm_forward_features():
    model = make_model().eval()
    images = make_batch()["image"]
    ours = model.image(images, 0.0)
    assert torch.allclose(ours.latent, model.image.vit.forward_features(images), atol=1e-6)
    assert torch.allclose(ours.pooled, ours.latent[:, 1:].mean(dim=1))


def test_masked_tokens_equal_encoder_on_the_kept_patches():
    # With one block the masked path must equal running timm's modules on the kept subset.
    model = make_model().eval()
    images = make_batch()["image"]
    torch.manual_seed(5)
    out = model.image(images, 0.75)
    vit = model.image.vit
    x = vit.patch_embed(images) + vit.pos_embed[:, 1:]
    x = torch.stack([x[i, out.keep[i]] for i in range(4)])
    x = torch.cat([(vit.cls_token + vit.pos_embed[:, :1]).expand(4, -1, -1), x], dim=1)
    assert torch.allclose(out.latent, vit.norm(vit.blocks(x)), atol=1e-6)


def test_eval_encoders_deterministic_and_normalised():
    model = make_model().eval()
    batch = make_batch()
    with torch.no_grad():
        a = model.encode_image(batch["image"])
        b = model.encode_image(batch["image"])
        t1 = model.encode_text(batch["input_ids"], batch["attention_mask"])
        t2 = model.encode_text(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(a, b) and torch.equal(t1, t2)
    assert torch.allclose(a.norm(dim=-1), torch.ones(4))
    assert torch.allclose(t1.norm(dim=-1), torch.ones(4))


def test_text_padding_does_not_change_outputs():
    model = make_model().eval()
    batch = make_batch()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    wide_ids = torch.cat([ids, torch.zeros(4, 20, dtype=ids.dtype)], dim=1)
    wide_mask = torch.cat([mask, torch.zeros(4, 20, dtype=mask.dtype)], dim=1)
    with torch.no_grad():
        narrow = model.encode_text(ids, mask)
        wide = model.encode_text(wide_ids, wide_mask)
    assert torch.allclose(narrow, wide, atol=1e-6)


def test_masks_follow_torch_rng_state():
    model = make_model(make_cfg(**{"mask.variant": "both"}))
    batch = make_batch()
    torch.manual_seed(7)
    first = model(batch, 0.5, 0.15)
    torch.manual_seed(7)
    second = model(batch, 0.5, 0.15)
    assert torch.equal(first["keep"], second["keep"])
    assert torch.equal(first["mlm_labels"], second["mlm_labels"])


def test_mim_loss_ignores_visible_patches_targets():
    model = make_model(make_cfg(**{"mask.variant": "image"}))
    out = model(make_batch(), 0.5)
    visible = out["mim_mask"] == 0
    base = mim_loss(out["mim_pred"], out["mim_target"], out["mim_mask"])
    target = out["mim_target"].clone()
    target[visible] = 100.0
    assert mim_loss(out["mim_pred"], target, out["mim_mask"]).item() == pytest.approx(base.item())
    target[~visible] += 1.0
    assert mim_loss(out["mim_pred"], target, out["mim_mask"]).item() != pytest.approx(base.item())


def test_patchify_raster_order_and_normalised_targets():
    images = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    patches = patchify(images, 8)  # [2, 4, 64]
    assert torch.equal(patches[1, 1], images[1, 0, 0:8, 8:16].flatten())  # row 0, column 1
    assert torch.equal(patches[0, 2], images[0, 0, 8:16, 0:8].flatten())  # row 1, column 0
    norm = normalized_patches(torch.randn(2, 1, 16, 16), 8)
    assert torch.allclose(norm.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(norm.var(-1), torch.ones(2, 4), atol=1e-3)


@pytest.mark.parametrize("variant, ratio", [("both", 0.5), ("both", 0.0), ("none", 0.5)])
def test_every_parameter_gets_a_gradient(variant, ratio):
    # Both towers learn; idle heads (unmasked tuning) still get a (zero) gradient for DDP.
    cfg = make_cfg(**{"mask.variant": variant, "loss.svd_weight": 0.1, "loss.kind": "medclip"})
    model = make_model(cfg)
    batch = make_batch()
    out = model(batch, ratio, 0.15 if variant == "both" else 0.0)
    MedFLIPLoss(cfg)(out, batch)["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    learned = (
        model.image.vit.patch_embed.proj.weight,
        model.text.bert.embeddings.word_embeddings.weight,
        model.image_proj.weight,
        model.text_proj.weight,
        model.logit_scale,
    )
    assert all(p.grad.abs().sum() > 0 for p in learned)


def test_heads_only_for_their_variants():
    plain = make_model()
    assert plain.decoder is None and plain.text.mlm_head is None
    with pytest.raises(ValueError, match="mask.variant"):
        plain(make_batch(), 0.0, text_ratio=0.15)
    both = make_model(make_cfg(**{"mask.variant": "both"}))
    head = both.text.mlm_head.predictions
    assert head.decoder.weight is both.text.bert.embeddings.word_embeddings.weight  # tied
    assert head.decoder.bias is head.bias


def test_temperature_learned_fixed_and_clamped():
    learned = make_model()
    assert learned.logit_scale.requires_grad
    with torch.no_grad():
        learned.logit_scale.fill_(20.0)
    learned.clamp_temperature_()  # CLIP-style: the parameter, after the optimiser step
    assert learned.temperature().item() == pytest.approx(0.01)
    fixed = make_model(make_cfg(**{"loss.learn_temperature": False, "loss.temperature": 2.0}))
    assert "logit_scale" not in dict(fixed.named_parameters())
    assert fixed.temperature().item() == pytest.approx(2.0)  # range widened to the given tau


def test_local_pretrained_text_tower(tmp_path):
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(tmp_path)
    cfg = make_cfg(**{"model.text": str(tmp_path)})
    tower = TextTower(cfg, VOCAB, PAD, mlm=True)
    assert tower.width == 24 and tower.bert.pooler is None
    batch = make_batch()
    assert tower(batch["input_ids"], batch["attention_mask"]).pooled.shape == (4, 24)
    with pytest.raises(ValueError, match="model.text"):
        TextTower(cfg, VOCAB + 1, PAD)


@pytest.mark.parametrize("shared", [False, True])
def test_which_text_the_contrastive_branch_sees(shared):
    cfg = make_cfg(**{"mask.variant": "text"})
    torch.manual_seed(0)
    model = MedFLIP(cfg, VOCAB, PAD, MASK, SPECIAL, shared_text_pass=shared).eval()
    batch = make_batch()
    calls = []
    model.text.bert.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(1)
    out = model(batch, 0.0, 0.3)  # ratio 0 draws nothing: mask_tokens is the first draw
    passes = len(calls)
    torch.manual_seed(1)
    masked, _ = mask_tokens(batch["input_ids"], batch["attention_mask"], 0.3, MASK, SPECIAL,
                            VOCAB)  # fmt: skip
    seen = masked if shared else batch["input_ids"]
    with torch.no_grad():
        want = model.encode_text(seen, batch["attention_mask"])
    assert passes == (1 if shared else 2)
    assert torch.allclose(out["text_emb"], want, atol=1e-6)
