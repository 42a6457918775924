"""The label policy: soft targets come from the text the tower reads (data.label_text)."""

import numpy as np
import pytest
from fixtures_data import MIMIC_REPORT, make_mimic, make_openi_findings_only

from medflip.config import Config, ConfigError, apply_overrides
from medflip.data import dataset as D
from medflip.data import sources
from medflip.data.corpus import records_corpus
from medflip.data.labels import OBSERVATIONS
from medflip.data.layouts import synthetic as synthetic_layout

IDX = {name: k for k, name in enumerate(OBSERVATIONS)}


def recall(records, truth, vectors) -> float:
    """Share of the positives the reports state that are positive in `vectors` [N, 14]."""
    hits = total = 0
    for r, v in zip(records, vectors, strict=True):
        for name in truth[r.study_id]:
            total += 1
            hits += int(v[IDX[name]] == 1)
    return hits / total


@pytest.fixture
def openi(tmp_path):
    root = str(tmp_path / "openi")
    return root, make_openi_findings_only(root)


def test_finding_only_in_findings_is_a_soft_target_and_the_choice_switches_it(openi):
    root, truth = openi
    by_policy = {}
    for policy in sources.LABEL_TEXTS:
        recs = sources.load_records("openi", root, policy).records
        corpus = records_corpus(recs, 32, [r.report for r in recs])
        by_policy[policy] = (recs, corpus.labels)
    recs, labels = by_policy["findings_impression"]
    first = next(k for k, r in enumerate(recs) if r.study_id == "CXR100")
    assert "The heart is enlarged" in recs[first].report  # the text the tower reads
    assert labels[first, IDX["Cardiomegaly"]] == 1
    assert np.isnan(labels[first, IDX["No Finding"]])
    _, chexpert_rule = by_policy["impression"]
    assert np.isnan(chexpert_rule[first, IDX["Cardiomegaly"]])
    assert chexpert_rule[first, IDX["No Finding"]] == 1
    before = recall(*by_policy["impression"][:1], truth, chexpert_rule)
    after = recall(recs, truth, labels)
    print(f"label recall on the fixture: impression {before:.3f}, findings+impression {after:.3f}")
    assert (before, after) == (pytest.approx(2 / 11), 1.0)


def test_config_reaches_the_training_corpus(openi, medflip_cache):
    root, _ = openi
    cfg = apply_overrides(Config(), {"data.source": "openi", "data.root": root})
    assert cfg.data.label_text == "findings_impression"
    default = D.train_corpus(cfg).labels
    chexpert = D.train_corpus(apply_overrides(cfg, {"data.label_text": "impression"})).labels
    card = IDX["Cardiomegaly"]
    assert (default[:, card] == 1).sum() > (chexpert[:, card] == 1).sum()
    with pytest.raises(ConfigError, match="data.label_text: 'findings' is not one of"):
        apply_overrides(cfg, {"data.label_text": "findings"})


def test_mimic_table_labels_stay_the_studys_and_the_policy_picks_the_soft_targets(tmp_path):
    root = str(tmp_path / "mimic")
    make_mimic(root, corrupt=False)
    assert "large right pleural effusion" in MIMIC_REPORT.lower()
    for policy, effusion in (("findings_impression", 1.0), ("impression", np.nan)):
        rec = next(
            r
            for r in sources.load_records("mimic-cxr", root, policy).records
            if r.study_id == "50000001"
        )
        assert rec.labels[IDX["Cardiomegaly"]] == 1  # the CSV row: evaluation and image labels
        np.testing.assert_equal(rec.text_labels[IDX["Pleural Effusion"]], effusion)


def test_synthetic_impression_policy_relabels_from_the_impression():
    codes = synthetic_layout.policy_labels(0, 200, "findings_impression")
    impression = synthetic_layout.policy_labels(0, 200, "impression")
    assert (impression == 1).sum() < (codes == 1).sum()  # impressions state less
