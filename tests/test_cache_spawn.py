"""A script without a `__main__` guard, whose corpus is rendered by spawned workers, used to
hang for ever (each child re-ran the script and waited on the lock its parent held). Now the
child says what to do and the run fails instead."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.data.dataset import build_tokenizer

    cfg = apply_overrides(variants.get("tiny"), {"data.num_train": 4001, "data.image_size": 16})
    build_tokenizer(cfg)  # renders 5 chunks in a 2-process spawn pool
    """
)


def test_unguarded_script_fails_with_the_fix_instead_of_hanging(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    env = {"MEDFLIP_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr


def test_guarded_script_renders_with_the_pool(tmp_path):
    script = tmp_path / "guarded.py"
    body = textwrap.indent(SCRIPT, "    ")
    script.write_text(f"def main():\n{body}\n\nif __name__ == '__main__':\n    main()\n")
    env = {"MEDFLIP_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
