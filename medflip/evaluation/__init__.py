"""Zero-shot, retrieval and linear-probe evaluation; per-item correctness."""
