"""No winner's curse: 7 arms identical to the baseline, 6 seeds each; the report's claim
names the arm best on *validation* and its verdict uses Holm's adjustment over the 7
(analysis/claims.py). A false "confirmed" or "refuted" must stay <= 5 %.

2,000 replications (seed-dominated regime of tests/stats_sim.py, 1,000 shared test items,
an independent 200-item validation score per run): Monte-Carlo SE of a 5 % rate 0.49
points. Measured at this commit: 0.6 % (Holm is conservative here: the 7 comparisons
share the baseline's runs); the best *test* arm with the same Holm adjustment: 1.3 %.
Before (9ed2dd5: report._best, the best test arm, unadjusted items x seeds percentile
bootstrap, 200 replications, SE 2.3 points): 12.0 %.
"""

import gc

import numpy as np
import stats_sim as sim

from analysis import claims, inference

ARMS, SEEDS, REPS = 8, 6, 2000  # the baseline and 7 identical arms


def _runs(rng) -> tuple[np.ndarray, np.ndarray]:
    """[REPS, ARMS, SEEDS] test accuracies (1,000 items) and validation accuracies (200)."""
    easy = sim.items(rng, REPS)
    off = sim.offsets(rng, REPS, SEEDS, ARMS, "seeds")
    test = np.stack([sim.scores(rng, [sim.TOP], off[:, a], easy, [1000])[..., 0]
                     for a in range(ARMS)], axis=1)  # fmt: skip
    val = np.stack([sim.scores(rng, [sim.TOP], off[:, a], sim.items(rng, REPS, 200), [200])[..., 0]
                    for a in range(ARMS)], axis=1)  # fmt: skip
    return test, val


def _false_verdicts(test, val, pick) -> float:
    est = inference.t_mean(test[:, 1:] - test[:, :1])  # [REPS, 7] paired over seeds
    wrong = 0
    for r in range(REPS):
        effects = {str(a): (est["lo"][r, a], est["hi"][r, a], est["p"][r, a], SEEDS)
                   for a in range(ARMS - 1)}  # fmt: skip
        about = str(int(np.argmax(pick[r, 1:].mean(axis=-1))))
        wrong += claims.family(effects, about)["verdict"] in ("confirmed", "refuted")
    return wrong / REPS


def test_seven_identical_arms_give_no_false_verdict_beyond_five_percent(monkeypatch):
    # statsmodels' Holm calls gc.collect() on every call (~0.1 s with this heap): 4,000
    # calls here; collection changes no result
    monkeypatch.setattr(gc, "collect", lambda *a: 0)
    test, val = _runs(np.random.default_rng(7))
    rate = _false_verdicts(test, val, val)  # the claimed arm: best on validation
    assert rate <= 0.05, rate
    # Holm bounds the family, so even the arm best on test stays within 5 %
    assert _false_verdicts(test, val, test) <= 0.05
