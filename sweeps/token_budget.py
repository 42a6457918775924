"""The token_budget sweep (issue 23): which token budget buys the most.

Image mask ratio x report-token budget (`mask.text_tokens`) x training resolution
(`data.train_image_size`) in the paper's recipe, each trial ending with full-size tuning
(every patch, the whole report, the full image). The Amdahl table in the README says why
the text budget matters: `python -m medflip.models.flops --amdahl`.
Options: `python sweeps/token_budget.py --help` (the shared sweep CLI, medflip/sweep/launch.py).
"""

import sys

from medflip.sweep import launch

if __name__ == "__main__":
    sys.exit(launch.main("token_budget"))
