"""The embedded synthetic corpus: determinism, shapes, the report <-> truth contract, what
the pixels show, and the corpus statistics the evaluation sets rely on."""

import dataclasses
import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from medflip.data.labels import OBSERVATIONS
from medflip.data.synthetic import FINDINGS, SyntheticCXR, render, sample_study, truth
from medflip.data.synthetic.__main__ import main
from medflip.data.synthetic.anatomy import P_OMIT, Finding
from medflip.data.synthetic.canvas import Canvas, from_phases, to_phases, upsample
from medflip.data.synthetic.renderer import geometry
from medflip.data.synthetic.report import NEGATIVE, write_report

IDX = {name: i for i, name in enumerate(OBSERVATIONS)}
N_STATS = 1000


@pytest.fixture(scope="module")
def corpus():
    """1,000 studies with their reports (no pixels): the statistics tests share them."""
    out = []
    for i in range(N_STATS):
        study, draws = sample_study(0, i)
        text, labels = write_report(study, draws)
        out.append((study, text, labels))
    return out


def _digest(item) -> str:
    h = hashlib.sha256(item["image"].tobytes())
    h.update(item["report"].encode())
    h.update(np.nan_to_num(item["labels"], nan=9.0).tobytes())
    return h.hexdigest()


def test_item_is_the_same_bytes_in_another_process():
    indices = [0, 7, 123, 4567]
    here = [_digest(SyntheticCXR(3, 5000, 64)[i]) for i in indices]
    code = (
        "import hashlib, numpy as np\n"
        "from medflip.data.synthetic import SyntheticCXR\n"
        "d = SyntheticCXR(3, 5000, 64)\n"
        f"for i in {indices}:\n"
        "    it = d[i]\n"
        "    h = hashlib.sha256(it['image'].tobytes())\n"
        "    h.update(it['report'].encode())\n"
        "    h.update(np.nan_to_num(it['labels'], nan=9.0).tobytes())\n"
        "    print(h.hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == here


def test_item_does_not_depend_on_access_order_or_dataset_size():
    a, b = SyntheticCXR(1, 50, 32), SyntheticCXR(1, 10_000, 32)
    first = _digest(a[17])
    for i in (3, 49, 0, 17, 8):
        a[i]
    assert _digest(a[17]) == first == _digest(b[17])
    assert np.array_equal(a.images([17, 3])[0], a[17]["image"])
    assert a.reports([17])[0][0] == a[17]["report"]
    assert _digest(SyntheticCXR(2, 50, 32)[17]) != first  # the seed matters


@pytest.mark.parametrize("size", [16, 33, 64, 128])
def test_item_types_shapes_and_ranges(size):
    item = SyntheticCXR(0, 40, size)[11]
    img = item["image"]
    assert img.dtype == np.float32 and img.shape == (size, size)  # float64 would leak here
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and img.std() > 0.05
    assert isinstance(item["report"], str) and item["report"].startswith("EXAMINATION: ")
    assert item["labels"].dtype == np.float32 and item["labels"].shape == (14,)
    t = item["truth"]
    assert t["labels"].dtype == np.float32 and t["labels"].shape == (14,)
    assert set(np.unique(t["labels"])) <= {0.0, 1.0}
    assert t["view"] in ("PA", "AP") and 0.3 < t["ctr"] < 0.75
    assert item["patient_id"] != item["study_id"] and "11" in item["study_id"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="seed"):
        SyntheticCXR(-1, 10, 64)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticCXR(0, 10, 8)
    with pytest.raises(IndexError, match="out of range"):
        SyntheticCXR(0, 10, 32)[10]
    assert SyntheticCXR(0, 10, 32)[-1]["study_id"] == SyntheticCXR(0, 10, 32)[9]["study_id"]
    with pytest.raises(ValueError, match="severity"):
        Finding(0.0)
    with pytest.raises(ValueError, match="side"):
        Finding(0.5, side="up")


def test_report_sections_and_label_codes_match_truth(corpus):
    for study, text, labels in corpus:
        heads = re.findall(r"^([A-Z]+):", text, flags=re.M)
        assert heads == ["EXAMINATION", "INDICATION", "FINDINGS", "IMPRESSION"], text
        for name in FINDINGS:
            code, f = labels[IDX[name]], study.findings.get(name)
            if f is None:  # absent: never positive; uncertain only via "atelectasis versus
                assert code != 1.0 and (code != -1.0 or "versus" in text), text  # consolidation"
            else:
                want = {"positive": 1.0, "uncertain": -1.0}.get(f.report, np.nan)
                assert code == want or (np.isnan(code) and np.isnan(want)), (name, text)
        said = any(study.device_report.values())
        assert (labels[IDX["Support Devices"]] == 1.0) == said
        finding = any(labels[IDX[o]] in (1.0, -1.0) for o in OBSERVATIONS[1:-1])
        nf = labels[IDX["No Finding"]]
        assert (nf == 1.0) if not finding else np.isnan(nf)


def test_negated_and_look_alike_findings_are_never_coded_positive(corpus):
    negations = [(name, s) for name, table in NEGATIVE.items() for s, _ in table]
    seen = {"pericardial": 0, "negated": 0}
    for study, text, labels in corpus:
        for name, sentence in negations:
            if sentence in text:
                seen["negated"] += 1
                assert labels[IDX[name]] == 0.0 and name not in study.findings, text
        if "pericardial effusion" in text and "Pleural Effusion" not in study.findings:
            seen["pericardial"] += 1
            assert labels[IDX["Pleural Effusion"]] != 1.0, text
    assert seen["negated"] > 500 and seen["pericardial"] > 10


def test_truth_ctr_follows_cardiomegaly(corpus):
    for study, _, _ in corpus:
        ctr = truth(study)["ctr"]
        if "Cardiomegaly" in study.findings:
            assert 0.5 <= ctr <= 0.7 + 1e-9
            assert ctr == pytest.approx(0.5 + 0.2 * study.findings["Cardiomegaly"].severity)
        else:
            assert 0.38 <= ctr < 0.5


def test_prevalences_are_sane(corpus):
    tl = np.stack([truth(s)["labels"] for s, _, _ in corpus])
    prevalence = dict(zip(OBSERVATIONS, tl.mean(0), strict=True))
    assert 0.2 <= prevalence["No Finding"] <= 0.3
    for name in FINDINGS:
        assert 0.08 <= prevalence[name] <= 0.4, (name, prevalence[name])
    assert 0.05 <= prevalence["Support Devices"] <= 0.3
    ap = np.mean([s.anatomy.view == "AP" for s, _, _ in corpus])
    assert 0.28 <= ap <= 0.42
    five = tl[:, [IDX[n] for n in FINDINGS]]
    abnormal = five.sum(1) > 0
    assert np.mean(five[abnormal].sum(1) == 1) >= 0.4  # the 5x200 set needs single findings
    per_class = [(five[:, k] == 1) & (five.sum(1) == 1) for k in range(5)]
    assert min(p.mean() for p in per_class) >= 0.06  # ~60 single-finding studies per class


def test_label_noise_and_hedging_shares(corpus):
    findings = [f for s, _, _ in corpus for f in s.findings.values()]
    devices = [m for s, _, _ in corpus for m in s.device_report.values()]
    omitted = sum(f.report == "omitted" for f in findings) + devices.count(False)
    share = omitted / (len(findings) + len(devices))
    assert abs(share - P_OMIT) < 0.025, share
    subtle = [f for f in findings if f.severity < 0.3 and f.report != "omitted"]
    clear = [f for f in findings if f.severity >= 0.3 and f.report != "omitted"]
    assert np.mean([f.report == "uncertain" for f in subtle]) > 0.45
    assert np.mean([f.report == "uncertain" for f in clear]) < 0.1


def _twins(name: str, severity: float, n: int, side: str = "", lobe: str = ""):
    """n studies with `name` at `severity` and their healthy twins (same anatomy, noise)."""
    out = []
    for i in range(n):
        study = sample_study(5, i)[0]
        finding = Finding(severity, side, lobe, detail=tuple(np.linspace(0.1, 0.9, 12)))
        sick = dataclasses.replace(study, findings={name: finding}, devices={})
        out.append((sick, dataclasses.replace(sick, findings={})))
    return out


def _box(img, g, x0, x1, y0, y1):
    """Mean of the image over x (from the midline) in [x0, x1], y in [y0, y1]."""
    s = img.shape[0]
    c0, c1 = sorted((int((g.cx + x0) * s), int((g.cx + x1) * s)))
    return float(img[int(y0 * s) : int(y1 * s) + 1, c0 : c1 + 1].mean())


def test_effusion_brightens_its_base_more_with_severity():
    rises = {}
    for sev in (0.1, 0.5, 0.9):
        rises[sev] = []
        for sick, healthy in _twins("Pleural Effusion", sev, 12, side="left"):
            g = geometry(healthy)
            a, b = render(sick, 64), render(healthy, 64)
            cp = g.costophrenic("left")
            base = (0.55 * g.half_width, 0.95 * g.half_width, cp - 0.25, cp - 0.02)
            other = (-0.95 * g.half_width, -0.55 * g.half_width, cp - 0.25, cp - 0.02)
            rises[sev].append(_box(a, g, *base) - _box(b, g, *base))
            assert abs(_box(a, g, *other) - _box(b, g, *other)) < 1e-6  # right side untouched
    means = {k: np.mean(v) for k, v in rises.items()}
    assert 0 < means[0.1] < 0.02 < means[0.5] < means[0.9], means  # trace: the angle only


def test_cardiomegaly_widens_the_heart_in_the_image():
    size = 128
    for sick, healthy in _twins("Cardiomegaly", 0.8, 10):
        measured = []
        for study in (healthy, sick):
            g = geometry(study)
            measured.append(_image_ctr(render(study, size), g))
            assert measured[-1] == pytest.approx(g.ctr, abs=0.05)
        assert measured[1] >= 0.56 and measured[1] - measured[0] > 0.08


def _image_ctr(img, g) -> float:
    """Heart width at its widest row / thoracic width, measured on the pixels: the bright
    run around the heart centre, thresholded halfway between lung and heart."""
    s = img.shape[0]
    prof = img[int(g.heart_y * s) - 1 : int(g.heart_y * s) + 2].mean(0)
    c = int((g.cx + g.heart_x) * s)
    lung = int((g.cx - 0.8 * g.half_width) * s)  # the right lung: an enlarged heart grows left
    low = prof[lung - 3 : lung + 3].mean()
    thr = 0.5 * (low + prof[c - 2 : c + 3].mean())
    a, b = c, c
    while a > 0 and prof[a - 1] > thr:
        a -= 1
    while b < s - 1 and prof[b + 1] > thr:
        b += 1
    return (b - a + 1) / s / (2 * g.half_width)


def test_consolidation_atelectasis_and_edema_show_where_they_should():
    checks = {  # finding -> (side, lobe, box from geometry)
        "Consolidation": (
            "right",
            "lower",
            lambda g: (-0.7 * g.half_width, -0.4 * g.half_width, g.dome_r - 0.14, g.dome_r - 0.06),
        ),
        "Atelectasis": (
            "left",
            "",
            lambda g: (0.3 * g.half_width, 0.7 * g.half_width, g.dome_l - 0.07, g.dome_l - 0.01),
        ),
        "Edema": ("bilateral", "", lambda g: (0.1, 0.2, g.carina + 0.02, g.carina + 0.12)),
    }
    for name, (side, lobe, box) in checks.items():
        rises = []
        for sick, healthy in _twins(name, 0.7, 10, side=side, lobe=lobe):
            g = geometry(sick)
            rises.append(_box(render(sick, 64), g, *box(g)) - _box(render(healthy, 64), g, *box(g)))
        assert np.mean(rises) > 0.08 and np.mean(np.array(rises) > 0.03) >= 0.9, (name, rises)


def test_atelectasis_raises_its_dome_and_shifts_the_mediastinum():
    sick, healthy = _twins("Atelectasis", 0.8, 1, side="right")[0]
    gs, gh = geometry(sick), geometry(healthy)
    assert gs.dome_r < gh.dome_r - 0.04 and gs.dome_l == gh.dome_l
    assert gs.shift < -0.02  # toward the patient's right (image left)


def test_devices_are_bright_thin_structures():
    study = sample_study(5, 3)[0]
    plain = dataclasses.replace(study, findings={}, devices={})
    for device in ("ett", "jugular", "picc", "ng", "pacemaker"):
        with_it = dataclasses.replace(plain, devices={device: 0.5})
        diff = render(with_it, 128) - render(plain, 128)
        changed = np.abs(diff) > 1e-6
        assert diff[changed].min() > -1e-6  # only brighter
        assert 0.001 < changed.mean() < 0.03, device  # thin, not a region


def test_polyphase_canvas_matches_a_bilinear_resize_and_dense_indexing():
    rng = np.random.default_rng(0)
    lo = rng.random((16, 16)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(lo)[None, None], scale_factor=2, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    assert np.allclose(from_phases(upsample(lo, 2)), ref, atol=1e-6)
    img = rng.random((12, 12)).astype(np.float32)
    assert np.array_equal(from_phases(to_phases(img, 2)), img)
    canvas, dense = Canvas(to_phases(img, 2)), img.copy()
    rows, cols = rng.integers(-3, 15, 40), rng.integers(-3, 15, 40)
    canvas.add_points(rows, cols, 2.0)
    ok = (rows >= 0) & (rows < 12) & (cols >= 0) & (cols < 12)
    dense[rows[ok], cols[ok]] += 2.0
    canvas.add_rect(3, 8, -2, 5, 1.0)
    dense[3:8, 0:5] += 1.0
    assert np.allclose(canvas.image(), dense)


def test_grid_cli_writes_a_png(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--grid" in capsys.readouterr().out
    path = tmp_path / "grid.png"
    assert main(["--grid", str(path), "--n", "3", "--image-size", "32"]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_corpus_cache_key_covers_every_module_of_the_package():
    import glob
    import os

    import medflip.data.synthetic as pkg
    from medflip.data.corpus import GENERATOR_CODE

    here = os.path.dirname(pkg.__file__)
    modules = sorted(f for f in os.listdir(here) if f.endswith(".py"))
    assert {"__init__.py", "__main__.py", "anatomy.py", "renderer.py", "report.py"} <= set(modules)
    pattern = os.path.join(os.path.dirname(here), GENERATOR_CODE[0])
    assert sorted(os.path.basename(p) for p in glob.glob(pattern)) == modules
