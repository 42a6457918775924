"""The demo sweep (`make demo`).

FLIP patch dropping at 0.5 vs none: zero-shot accuracy vs training time, 3 seeds per arm.
Options: `python sweeps/demo.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("demo"))
