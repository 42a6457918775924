"""The masking_variants sweep.

Table 3: no mask, image mask, text mask, both.
Options: `python sweeps/masking_variants.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("masking_variants"))
