"""Config: dotted overrides, validation naming the key, flatten/unflatten, stable hashing."""

import dataclasses
import subprocess
import sys

import pytest

from medflip import config, variants
from medflip.config import ConfigError, apply_overrides, config_hash, flatten, unflatten


def test_apply_overrides_returns_new_config_and_leaves_base_alone():
    base = variants.get("demo")
    new = apply_overrides(base, {"mask.image_ratio": 0.75, "seed": 3})
    assert new.mask.image_ratio == 0.75 and new.seed == 3
    assert base.mask.image_ratio != 0.75 and base.seed == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.mask.image_ratio = 0.1


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("mask.image_ratio", 0.99, "mask.image_ratio"),
        ("mask.text_ratio", -0.1, "mask.text_ratio"),
        ("loss.temperature", 0.0, "loss.temperature"),
        ("data.fraction", 0.0, "data.fraction"),
        ("mask.variant", "everything", "mask.variant"),
        ("optim.precision", "fp8", "optim.precision"),
        ("optim.batch_size", 12.5, "optim.batch_size"),
        ("optim.batch_size", True, "optim.batch_size"),
        ("loss.learn_temperature", "maybe", "loss.learn_temperature"),
        ("optim.lr", float("nan"), "optim.lr"),
        ("model.text", "scratch-huge", "model.text"),
        ("data.source", "mimic-cxr", "data.root"),
    ],
)
def test_bad_values_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        apply_overrides(variants.get("demo"), {key: value})


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError) as err:
        apply_overrides(variants.get("demo"), {"mask.image_ration": 0.5})
    assert "mask.image_ratio" in str(err.value) and "unknown" in str(err.value)


def test_cross_field_patch_size_must_divide_image_size():
    with pytest.raises(ConfigError, match="data.image_size"):
        apply_overrides(variants.get("demo"), {"data.image_size": 60})


def test_flatten_roundtrip_and_types():
    cfg = apply_overrides(variants.get("demo"), {"loss.svd_weight": 0.3, "mask.variant": "both"})
    flat = flatten(cfg)
    assert set(flat) == set(config.KEYS)
    assert flat["loss.svd_weight"] == 0.3 and flat["mask.variant"] == "both"
    assert unflatten(flat) == cfg


def test_parse_sets_coerces_strings_per_key_type():
    parsed = config.parse_sets(
        [
            "optim.batch_size=64",
            "loss.learn_temperature=false",
            "mask.image_ratio=0.5",
            "model.text=scratch-small",
        ]
    )
    cfg = apply_overrides(variants.get("demo"), parsed)
    assert cfg.optim.batch_size == 64 and isinstance(cfg.optim.batch_size, int)
    assert cfg.loss.learn_temperature is False and cfg.model.text == "scratch-small"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.parse_sets(["mask.image_ratio"])
    with pytest.raises(ConfigError, match="optim.lr"):
        config.parse_sets(["optim.lr=fast"])


def test_config_hash_stable_across_processes_and_key_order():
    a = apply_overrides(variants.get("demo"), {"seed": 1, "mask.image_ratio": 0.25})
    b = apply_overrides(variants.get("demo"), {"mask.image_ratio": 0.25, "seed": 1})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(variants.get("demo"))
    code = (
        "from medflip import variants, config;"
        "c = config.apply_overrides(variants.get('demo'), {'seed': 1, 'mask.image_ratio': 0.25});"
        "print(config.config_hash(c))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == config_hash(a)


def test_variants_valid_and_distinct():
    demo, paper = variants.get("demo"), variants.get("paper")
    assert paper.model.patch_size == 16 and paper.data.image_size == 224
    assert paper.model.image_width == 768 and paper.model.text == "scratch-base"
    assert demo.data.source == "synthetic"
    with pytest.raises(ConfigError, match="variant"):
        variants.get("nope")


def test_config_file_of_dotted_keys_and_tables_with_set_winning(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('seed = 3\noptim.lr = 0.002\n[mask]\nimage_ratio = 0.25\nvariant = "image"\n')
    got = config.overrides_from_cli(str(path), ["optim.lr=0.004"])
    assert got == {"seed": 3, "optim.lr": 0.004, "mask.image_ratio": 0.25, "mask.variant": "image"}
    cfg = apply_overrides(variants.get("tiny"), got)
    assert (cfg.seed, cfg.optim.lr, cfg.mask.image_ratio) == (3, 0.004, 0.25)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[optim]\nlrr = 1\n", "unknown config key 'optim.lrr'; did you mean optim.lr"),
        ("mask.image_ratio = 2.0\n", "mask.image_ratio: 2.0 is outside [0.0, 0.95]"),
        ("optim.batch_size = 'big'\n", "optim.batch_size: expected a number"),
        ("optim.lr = \n", "not valid TOML"),
    ],
)
def test_config_file_errors_name_the_file_and_the_key(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load_file(str(path))
    assert str(err.value).startswith(f"--config {path}: ") and fragment in str(err.value)


def test_missing_config_file_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--config .*nope\.toml: cannot read"):
        config.load_file(str(tmp_path / "nope.toml"))


def test_key_reference_lists_every_key_with_default_range_and_meaning():
    from medflip import config_doc

    assert set(config.KEYS) <= set(config_doc.MEANING), "a key without a meaning"
    lines = config_doc.table("tiny").splitlines()[1:]
    by_key = {line.split()[0]: line for line in lines}
    assert set(by_key) == set(config.KEYS)
    assert "32 *" in by_key["data.image_size"] and "[8, inf)" in by_key["data.image_size"]
    assert "none | image | text | both" in by_key["mask.variant"]
    assert "(0, 1]" in by_key["data.fraction"]  # the exclusive bound shows as such
    assert by_key["optim.lr"].rstrip().endswith(config_doc.MEANING["optim.lr"])


def test_python_m_medflip_config_prints_the_reference():
    out = subprocess.run(
        [sys.executable, "-m", "medflip.config", "--variant", "paper"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "model.image_width" in out and "768 *" in out and "paper differs from demo" in out


def test_range_errors_show_both_brackets():
    with pytest.raises(ConfigError) as err:
        apply_overrides(variants.get("demo"), {"optim.batch_size": 1})
    assert str(err.value) == "optim.batch_size: 1 is outside [2, inf)"
