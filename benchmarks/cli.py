"""Flags the step benchmarks share. No heavy imports here: `--help` answers at once."""

from __future__ import annotations

if __name__ == "__main__":  # a helper, not a benchmark: say so instead of printing nothing
    raise SystemExit(
        "benchmarks/cli.py is shared code, not a benchmark:"
        " run benchmarks/masking.py, svd.py or throughput.py (--help lists the options)"
    )

import argparse


def step_parser(description: str) -> argparse.ArgumentParser:
    """--variant, --repeats, --precision, --device: what every step benchmark times."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--variant", default="demo")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    return parser
