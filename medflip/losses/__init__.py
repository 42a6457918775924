"""Contrastive loss kinds, the SVD term and its spectral solver, per-row bookkeeping."""
