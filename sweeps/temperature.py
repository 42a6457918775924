"""The temperature sweep.

tau of the contrastive loss, log-uniform in [0.01, 0.5].
Options: `python sweeps/temperature.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("temperature"))
