"""The mask_ratio sweep.

Fig. 1: zero-shot accuracy vs training time per image mask ratio.
Options: `python sweeps/mask_ratio.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("mask_ratio"))
