"""The svd_weight sweep.

beta of eq. 7 in [0, 1]; beta = 0 always evaluated.
Options: `python sweeps/svd_weight.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("svd_weight"))
