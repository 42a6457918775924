"""`medflip COMMAND ...`: one entry point for every CLI (pyproject `[project.scripts]`).

    medflip sweep mask_ratio --dry-run      # = python sweeps/mask_ratio.py --dry-run
    medflip train --variant demo            # = python -m medflip.train
    medflip frontier runs/demo              # = python analysis/frontier.py runs/demo

Each command is the existing CLI, called with the rest of the command line: this module
only dispatches. It imports nothing but the standard library before it knows the command,
so `medflip --help` answers at once and a command's `--help` costs only that command's
own imports (each CLI keeps torch, Ray and pandas behind its parser).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# command -> (what it runs, the CLI: "module:function" called with argv; "sweep" and
# "analysis" are dispatched below: a sweep by name, an analysis script with its error line)
COMMANDS: dict[str, tuple[str, str]] = {
    "sweep": ("a named sweep (sweeps/NAME.py); medflip sweep --help lists them", "sweep"),
    "train": ("one run without Ray (python -m medflip.train)", "medflip.train:main"),
    "frontier": ("accuracy-vs-cost frontier of a run (analysis/frontier.py)", "analysis"),
    "report": ("a sweep's report: figures and tables (analysis/report.py)", "analysis"),
    "ablation": ("the paper's ablation tables (analysis/ablation.py)", "analysis"),
    "config": (
        "every config key: default, range, meaning (python -m medflip.config)",
        "medflip.config_doc:main",
    ),
    "prepare": (
        "decode a real dataset once (python -m medflip.data.prepare)",
        "medflip.data.prepare:main",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (what, _) in COMMANDS.items())
    return (
        "usage: medflip COMMAND [ARGS ...]\n\n"
        f"commands:\n{rows}\n\n"
        "`medflip COMMAND --help` shows a command's options."
    )


def _call(target: str, argv: list[str]) -> int:
    module, _, attr = target.partition(":")
    fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), attr)
    return int(fn(argv) or 0)


def _sweep(argv: list[str]) -> int:
    """`medflip sweep NAME ...`: the sweep CLI of space NAME (dashes or underscores)."""
    # By name, like every target here: the entry point sits above every layer
    # (tests/test_layers.py reads static imports; Ray loads only once a sweep runs).
    spaces = importlib.import_module("medflip.sweep.spaces")  # no Ray, no torch
    names = sorted(spaces.SPACES)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: medflip sweep NAME [OPTIONS ...]\n\nsweeps: " + ", ".join(names))
        print("`medflip sweep NAME --help` shows a sweep's options.")
        return 0 if argv else 2
    name = argv[0].replace("-", "_")
    if name not in spaces.SPACES:
        print(
            f"medflip sweep: error: unknown sweep {argv[0]!r}; choose one of {', '.join(names)}",
            file=sys.stderr,
        )
        return 2
    launch = importlib.import_module("medflip.sweep.launch")
    return launch.main(name, argv[1:], prog=f"medflip sweep {name}")


def _analysis(command: str, argv: list[str]) -> int:
    """analysis/<command>.py's main, with its one-line error handling (analysis.common.cli)."""
    module = importlib.import_module(f"analysis.{command}")
    common = importlib.import_module("analysis.common")
    return common.cli(f"medflip {command}", module.main, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"medflip: error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[command][1]
    if target == "sweep":
        return _sweep(rest)
    if target == "analysis":
        return _analysis(command, rest)
    return _call(target, rest)


if __name__ == "__main__":
    sys.exit(main())
