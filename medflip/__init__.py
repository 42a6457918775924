"""medflip: MedFLIP pretraining ablations at scale."""

__version__ = "0.1.0"
