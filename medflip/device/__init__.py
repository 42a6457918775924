"""What the hardware decides: the precision a device runs (precision.py) and the collectives
of a multi-worker run (distributed.py). Below models, losses, evaluation and training, which
all use them; imports only torch."""
