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

from medflip import config, variants
from medflip.training import progress, resume

# What an output dir holds once a run has written to it: a second run there without
# --resume would merge its rows into (or overwrite) the first one's.
RUN_FILES = ("results.parquet", "results.parts", "checkpoint")


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
        "--config",
        default=None,
        metavar="FILE",
        help="TOML file of dotted config keys (mask.image_ratio = 0.5); --set overrides it. "
        "python -m medflip.config lists every key",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output dir for results.parquet and checkpoint/ (default: runs/single-<config hash>)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from <out>/checkpoint (refused when there is none, and when the config "
        f"differs from the saved one in anything but {', '.join(resume.SAFE_TO_CHANGE)}); "
        "without it, an --out that holds a run is refused",
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


def _resume_from(out: str, wanted: bool, cfg: config.Config) -> tuple[str | None, str]:
    """The checkpoint to continue (None: start fresh) and the run's trial id.

    Raises `resume.ResumeMismatch` when the saved run trained under other settings.
    """
    trial_id = f"single-{config.config_hash(cfg)}"
    directory = os.path.join(out, "checkpoint")
    if not wanted:
        held = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
        if held:
            raise config.ConfigError(
                f"--out {out}: already holds a run ({', '.join(held)}); pass --resume to "
                "continue it, or choose a new --out"
            )
        return None, trial_id
    if not os.path.exists(os.path.join(directory, "state.pt")):
        raise config.ConfigError(
            f"--resume: no checkpoint in {directory} (no state.pt), nothing to continue; "
            "drop --resume to start a new run, or give --out the run to continue"
        )
    saved = resume.saved_config(directory)
    resume.check(saved, config.flatten(cfg), f"the run in {out}", known=set(config.KEYS))
    # The rows keep the run's first id, so a budget extended on resume stays one trial.
    return directory, f"single-{config.flat_hash(saved)}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        overrides = config.overrides_from_cli(args.config, args.sets)
        cfg = config.apply_overrides(variants.get(args.variant), overrides)
        out = args.out or os.path.join("runs", f"single-{config.config_hash(cfg)}")
        resume_dir, trial_id = _resume_from(out, args.resume, cfg)
        from medflip.data import checks  # data, tokenizer, precision: before any work

        checks.check(cfg)
    except (config.ConfigError, resume.ResumeMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    log = logging.getLogger("medflip")
    from medflip.results import table as results  # pandas: after the arguments are checked

    # The first start of a process spends most of its time importing the stack: say so.
    log.info("loading torch, timm and transformers ...")
    from medflip.training import engine  # torch and the models load only once the config is valid

    log.info(
        "building the %s corpus, tokenizer and model (variant %s); budget: %s",
        cfg.data.source,
        args.variant,
        _budget_text(cfg),
    )
    os.makedirs(out, exist_ok=True)
    flat = config.flatten(cfg)
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

    final = engine.fit(cfg, report=report, resume_from=resume_dir)
    if results.results_path(out).exists():
        results.compact(out)  # the appended part files folded into results.parquet
    if not args.quiet:
        extra = {"results": str(results.results_path(out)), "checkpoint": f"{out}/checkpoint"}
        print(progress.summary(final, extra), flush=True)
    print(json.dumps(_json_safe(final), sort_keys=True))
    return 0 if final["status"] == "completed" else 1


def _budget_text(cfg: config.Config) -> str:
    steps = f"{cfg.optim.max_steps} steps"
    if cfg.optim.time_budget_s > 0:
        return f"{steps} or {cfg.optim.time_budget_s:g} s of training, whichever comes first"
    return steps


if __name__ == "__main__":
    sys.exit(main())
