"""Flags the step benchmarks share. No heavy imports here: `--help` answers at once."""

from __future__ import annotations

import argparse


def step_parser(description: str) -> argparse.ArgumentParser:
    """--variant, --repeats, --precision, --device: what every step benchmark times."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--variant", default="demo")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    return parser
