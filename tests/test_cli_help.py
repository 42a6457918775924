"""Every CLI's `--help` exits 0 with its own program name, before torch, Ray or pandas load;
the `medflip` entry point dispatches to the same CLIs.

Each command runs in a fresh interpreter under a probe that reports, at exit, which heavy
modules `sys.modules` holds. No timing is asserted (speed lives in benchmarks/); what makes
`--help` slow is exactly these imports, so their absence is what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "ray", "pandas", "pyarrow", "optuna", "transformers", "timm")

PROBE = """
import atexit, json, runpy, sys
HEAVY = HEAVY_NAMES
def report():
    sys.stderr.write("PROBE " + json.dumps(sorted(h for h in HEAVY if h in sys.modules)))
atexit.register(report)
kind, target, *rest = sys.argv[1:]
sys.argv = [target, *rest]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.path.insert(0, str(__import__("pathlib").Path(target).parent))
    runpy.run_path(target, run_name="__main__")
""".replace("HEAVY_NAMES", repr(HEAVY))

SWEEPS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "sweeps").glob("*.py"))
# shared code of the benchmarks: run directly, each names the script to run instead
HELPERS = [
    f"benchmarks/{n}.py" for n in ("cli", "common", "sweep_scale_table", "sweep_scale_trial")
]
BENCHMARKS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "benchmarks").glob("*.py")
    if p.relative_to(ROOT).as_posix() not in HELPERS
)
MODULES = [
    "medflip.cli",
    "medflip.train",
    "medflip.config",
    "medflip.data.prepare",
    "medflip.data.synthetic",
    "medflip.sweep.prepare",
    "medflip.sweep.recorder",
    "medflip.sweep.cluster",
]
# command -> the program name its usage line must show (a help of another tool is drift)
PROGS = {
    "medflip.sweep.prepare": "python -m medflip.sweep.prepare",
    "medflip.sweep.recorder": "python -m medflip.sweep.recorder",
    "medflip.sweep.cluster": "python -m medflip.sweep.cluster",
    "medflip.data.prepare": "python -m medflip.data.prepare",
    "medflip.train": "python -m medflip.train",
    "medflip.config": "python -m medflip.config",
    **{s: s for s in SWEEPS},
}


def probe(kind: str, target: str, *args: str) -> tuple[int, str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, kind, target, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "PROBE " in proc.stderr, proc.stderr[-2000:]
    return proc.returncode, proc.stdout, json.loads(proc.stderr.rsplit("PROBE ", 1)[1])


def test_the_lists_cover_the_tools():
    assert len(SWEEPS) >= 7 and len(BENCHMARKS) >= 9
    assert all((ROOT / h).exists() for h in HELPERS)


@pytest.mark.parametrize("helper", HELPERS)
def test_benchmark_helpers_name_the_script_to_run(helper):
    proc = subprocess.run(
        [sys.executable, helper, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith(f"{helper} is ") and "run benchmarks/" in proc.stderr


@pytest.mark.parametrize(
    "kind,target", [("-m", m) for m in MODULES] + [("path", p) for p in SWEEPS + BENCHMARKS]
)
def test_help_exits_0_with_its_name_and_no_heavy_import(kind, target):
    rc, out, heavy = probe(kind, target, "--help")
    assert rc == 0, out
    assert out.startswith("usage: "), out[:300]
    if target in PROGS:
        assert out.startswith(f"usage: {PROGS[target]} ") or out.startswith(
            f"usage: {PROGS[target]}\n"
        ), out.splitlines()[0]
    assert heavy == [], f"{target} --help loaded {heavy}"


@pytest.mark.parametrize(
    "argv,first",
    [
        (["--help"], "usage: medflip COMMAND"),
        (["sweep", "--help"], "usage: medflip sweep NAME"),
        (["sweep", "mask-ratio", "--help"], "usage: medflip sweep mask_ratio "),
        (["train", "--help"], "usage: python -m medflip.train "),
        (["config", "--help"], "usage: python -m medflip.config"),
    ],
)
def test_the_medflip_entry_point_dispatches_without_heavy_imports(argv, first):
    rc, out, heavy = probe("-m", "medflip.cli", *argv)
    assert rc == 0 and out.startswith(first), out[:300]
    assert heavy == []


def test_sweep_help_lists_every_variant():
    from medflip import variants

    rc, out, _ = probe("path", "sweeps/mask_ratio.py", "--help")
    flat = " ".join(out.split())
    assert rc == 0 and f"base config ({', '.join(variants.NAMES)})" in flat


def test_unknown_commands_are_one_error_line(capsys):
    from medflip import cli

    assert cli.main(["nope"]) == 2
    assert capsys.readouterr().err.startswith("medflip: error: unknown command 'nope'")
    assert cli.main(["sweep", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medflip sweep: error: unknown sweep 'nope'; choose one of ")
    assert "mask_ratio" in err and len(err.splitlines()) == 1


def test_analysis_help_exits_0():
    """analysis/ is being rewritten (its own issue); its --help must work through `medflip`."""
    for command in ("frontier", "report", "ablation"):
        rc, out, _ = probe("-m", "medflip.cli", command, "--help")
        assert rc == 0 and out.startswith("usage: "), (command, out[:300])


def test_the_probe_sees_heavy_imports():
    """The probe itself: a command that loads pandas is reported as loading it."""
    rc, _, heavy = probe("-m", "medflip.sweep.recorder", "/nonexistent-run-dir")
    assert rc == 2 and "pandas" in heavy
