"""The joint sweep.

Pareto front of zero-shot accuracy vs device-hours over variant, ratio, tau, beta.
Options: `python sweeps/joint.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("joint"))
