"""An item-response model of a sweep's evaluations, with known truth, vectorised over
simulation replications (tests/test_stats_*.py).

A run (arm a, seed s) evaluated at training time t answers test item i correctly with
probability sigmoid(logit(acc_a(t)) + u_s + v_as + b_i): b_i ~ N(0, 1) the item's easiness
(one test set per replication, shared by every run: the pairing), u_s ~ N(0, seed_sd) what
a seed does to every arm (data order), v_as ~ N(0, arm_seed_sd) the arm x seed
interaction; every evaluation draws its answers afresh. acc_a(t) rises from chance:
chance + (top - chance)(1 - exp(-speed_a t / scale)), the demo's shape (280 s, a curve
point every 35 s on the first 60 items, 1,000 items at the last evaluation).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

CHANCE = 0.2
TOP = 0.6
REGIMES = {  # (seed_sd, arm_seed_sd) in logits
    "items": (0.05, 0.02),  # evaluation noise (~2 points per difference) dominates
    "seeds": (0.05, 0.15),  # seed-to-seed variation (~5 points per difference) dominates
}


def rise(t, speed=1.0, top=TOP, scale=90.0) -> np.ndarray:
    return CHANCE + (top - CHANCE) * (1 - np.exp(-speed * np.asarray(t, dtype=float) / scale))


def logit(p):
    return np.log(p / (1 - p))


def expected(p: float, sd: float) -> float:
    """E[sigmoid(logit p + z)], z ~ N(0, 1 + sd^2): the accuracy over items and seeds."""
    z, w = hermegauss(80)
    return float(np.sum(w / w.sum() / (1 + np.exp(-(logit(p) + np.sqrt(1 + sd**2) * z)))))


def items(rng, reps: int, n: int = 1000) -> np.ndarray:
    """[reps, n] item easiness: one test set per replication."""
    return rng.normal(0.0, 1.0, (reps, n))


def offsets(rng, reps: int, seeds: int, arms: int, regime: str) -> np.ndarray:
    """[reps, arms, seeds] logit offset of each run: the shared seed effect plus arm x seed."""
    seed_sd, arm_sd = REGIMES[regime]
    shared = rng.normal(0.0, seed_sd, (reps, 1, seeds))
    return shared + rng.normal(0.0, arm_sd, (reps, arms, seeds))


def scores(rng, acc, offset, easy, n_items) -> np.ndarray:
    """[reps, seeds, E] observed accuracies of one arm's runs.

    acc [E] true accuracy at each evaluation; offset [reps, seeds]; easy [reps, N];
    n_items [E] items scored at each evaluation (a prefix of the test set)."""
    reps, seeds = offset.shape
    out = np.empty((reps, seeds, len(acc)))
    for e, (p, m) in enumerate(zip(acc, n_items, strict=True)):
        grown = (p - CHANCE) / (TOP - CHANCE)  # a seed's effect grows as the model learns
        ability = (logit(p) + grown * offset[:, :, None]).astype(np.float32)
        ability = ability + easy[:, None, :m].astype(np.float32)  # [reps, seeds, m]
        prob = 1 / (1 + np.exp(-ability))  # float32: half the time of float64
        out[:, :, e] = (rng.random(prob.shape, dtype=np.float32) < prob).mean(axis=-1)
    return out


def demo_grid(every: float = 35.0, budget: float = 280.0, cheap: int = 60, full: int = 1000):
    """(times [E], items scored [E]): cheap curve points, the full set at the last."""
    xs = np.arange(every, budget + 1e-9, every)
    n = np.full(len(xs), cheap)
    n[-1] = full
    return xs, n
