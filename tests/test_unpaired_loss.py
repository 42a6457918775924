"""Unpaired rows enter the soft-target loss through their label vectors (MedCLIP's
decoupling) instead of being dropped; identity-target kinds still use pairs only."""

import torch

from medflip import variants
from medflip.config import apply_overrides
from medflip.losses.contrastive import MedFLIPLoss, clip_loss, label_targets, medclip_loss

N, D = 8, 16


def rows(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(N, D, generator=g).requires_grad_()
    text = torch.randn(N, D, generator=g).requires_grad_()
    coded = torch.randint(-1, 2, (N, 14), generator=g).float()  # 1 / 0 / -1
    coded[coded == 0] = float("nan") if seed else 0.0  # blanks too
    image_labels = torch.roll(coded, 1, dims=1)  # what the image shows differs from the text
    paired = torch.tensor([True, True, True, True, False, False, False, False])
    outputs = {"image_emb": image, "text_emb": text, "temperature": torch.tensor(0.1)}
    batch = {"labels": coded, "image_labels": image_labels, "paired": paired}
    return outputs, batch


def criterion(kind: str) -> MedFLIPLoss:
    return MedFLIPLoss(apply_overrides(variants.get("tiny"), {"loss.kind": kind}))


def test_medclip_uses_every_row_and_the_unpaired_rows_change_the_gradient():
    for seed in (0, 1):
        outputs, batch = rows(seed)
        loss = criterion("medclip")(outputs, batch)["loss_contrastive"]
        want = medclip_loss(  # reference: the eq. 1-5 function on all N rows directly
            outputs["image_emb"], outputs["text_emb"], label_targets(batch["image_labels"]),
            label_targets(batch["labels"]), 0.1,
        )  # fmt: skip
        torch.testing.assert_close(loss, want)
        loss.backward()
        unpaired = ~batch["paired"]
        assert outputs["image_emb"].grad[unpaired].abs().sum() > 0
        assert outputs["text_emb"].grad[unpaired].abs().sum() > 0
        paired_only = medclip_loss(
            outputs["image_emb"][batch["paired"]], outputs["text_emb"][batch["paired"]],
            label_targets(batch["image_labels"][batch["paired"]]),
            label_targets(batch["labels"][batch["paired"]]), 0.1,
        )  # fmt: skip
        assert not torch.isclose(loss, paired_only)  # they were dropped before


def test_identity_target_kinds_still_use_pairs_only():
    outputs, batch = rows()
    loss = criterion("clip")(outputs, batch)["loss_contrastive"]
    p = batch["paired"]
    torch.testing.assert_close(
        loss, clip_loss(outputs["image_emb"][p], outputs["text_emb"][p], 0.1)
    )
    loss.backward()
    assert outputs["image_emb"].grad[~p].abs().sum() == 0  # no target for a mismatched text
