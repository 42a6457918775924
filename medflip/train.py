"""One MedFLIP pretraining run on this machine, without Ray.

    python -m medflip.train --variant demo --set mask.image_ratio=0.5 --out runs/single

Shows progress in the terminal, writes every evaluation's metrics to
`<out>/results.parquet` (the results schema), keeps the latest checkpoint in
`<out>/checkpoint/` (`--resume` continues from it) and ends by printing one line of JSON
with the final metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys

from medflip import config, results, variants


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m medflip.train",
        description="Run one MedFLIP pretraining run (no Ray) and print its final metrics "
        "as one JSON line.",
        epilog="Example: python -m medflip.train --variant demo --set mask.image_ratio=0.75 "
        "--set optim.time_budget_s=120 --out runs/r75",
    )
    p.add_argument("--variant", default="demo", help=f"base config: {', '.join(variants.NAMES)}")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set loss.kind=medflip",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output dir for results.parquet and checkpoint/ (default: runs/single-<config hash>)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoint if it exists"
    )
    p.add_argument("--quiet", action="store_true", help="only warnings and the final JSON line")
    return p.parse_args(argv)


def _keep_checkpoint(src: str, out: str) -> None:
    """Replace <out>/checkpoint with `src` so a crash mid-copy keeps the previous one."""
    dest = os.path.join(out, "checkpoint")
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dest + ".old"
    if os.path.exists(dest):
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _json_safe(metrics: dict) -> dict:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = config.apply_overrides(variants.get(args.variant), config.parse_sets(args.sets))
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from medflip import engine  # torch and the models load only once the config is valid

    out = args.out or os.path.join("runs", f"single-{config.config_hash(cfg)}")
    os.makedirs(out, exist_ok=True)
    resume = os.path.join(out, "checkpoint") if args.resume else None
    if resume and not os.path.exists(os.path.join(resume, "state.pt")):
        print(f"note: no checkpoint in {out}/checkpoint; starting fresh", file=sys.stderr)
        resume = None
    flat, trial_id = config.flatten(cfg), f"single-{config.config_hash(cfg)}"
    manifest = results.manifest(num_workers=1)

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        known = {k: v for k, v in metrics.items() if k in results.METRICS}
        row = results.row(
            flat,
            known,
            manifest,
            experiment=os.path.basename(out.rstrip("/")),
            sweep="single",
            trial_id=trial_id,
        )
        results.append(out, [row])
        if checkpoint_dir:
            _keep_checkpoint(checkpoint_dir, out)

    final = engine.fit(cfg, report=report, resume_from=resume)
    logging.getLogger("medflip").info("results: %s", results.results_path(out))
    print(json.dumps(_json_safe(final), sort_keys=True))
    return 0 if final["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
