"""The data_efficiency sweep.

Fig. 3: zero-shot accuracy vs share of pretraining pairs, masked vs not.
Options: `python sweeps/data_efficiency.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("data_efficiency"))
