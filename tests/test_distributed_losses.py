"""Every loss kind at world size 2 (gloo, DDP) equals one process on the full batch."""

import dist_losses
import pytest


@pytest.fixture(scope="module")
def report():
    return dist_losses.run()  # one spawn of 2 ranks for every case (~5 s)


@pytest.mark.parametrize("case", sorted(dist_losses.CASES))
def test_world_size_2_loss_and_gradients_equal_single_process(report, case):
    r = report[case]
    assert r["loss_ranks_equal"] and r["grads_ranks_equal"]  # the global loss, on every rank
    assert r["loss"] <= 1e-5, r
    assert r["grad"] <= 1e-5, r


def test_partly_paired_case_has_a_rank_without_pairs():
    """The partly-paired case is the hard one: rank 1's share holds no pair at all."""
    batch = dist_losses.global_batch(paired=True)
    assert not dist_losses.shard(batch, 1, 2)["paired"].any()
    assert dist_losses.shard(batch, 0, 2)["paired"].any()


def test_text_only_case_gives_the_ranks_different_image_counts():
    """Rows without an image: each rank's image tower sees a different number of rows."""
    batch = dist_losses.global_batch(paired=True, text_only=True)
    counts = [int(dist_losses.shard(batch, r, 2)["has_image"].sum()) for r in range(2)]
    assert counts[0] != counts[1] and min(counts) > 0
