"""The argument parsers of the sweep layer's maintenance commands, importable before Ray or
pandas load (so `--help` and a bad flag are answered at once):

    python -m medflip.sweep.recorder [--compact-only] RUN_DIR
    python -m medflip.sweep.cluster [--address auto] [--clear] RUN_DIR

recorder.py and cluster.py parse with these in an `if __name__ == "__main__":` block placed
before their own imports, then again in their `main` (a parse costs microseconds).
"""

from __future__ import annotations

import argparse


def recorder_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m medflip.sweep.recorder",
        description="Fill RUN_DIR/results.parquet with the rows in Ray's trial files "
        "(rows a killed driver never wrote) and fold its part files into one file.",
    )
    p.add_argument("run_dir", help="the experiment directory (<storage>/<name>)")
    p.add_argument(
        "--compact-only", action="store_true", help="only fold the part files into one table"
    )
    return p


def cluster_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m medflip.sweep.cluster",
        description="List (or --clear) the placement groups an aborted sweep left holding "
        "cluster resources; one JSON line each.",
    )
    p.add_argument("run_dir", help="the experiment directory (<storage>/<name>)")
    p.add_argument("--address", default="auto", help="the Ray cluster (default auto)")
    p.add_argument("--clear", action="store_true", help="remove them (else only list)")
    return p
