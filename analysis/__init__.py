"""Analysis of medflip results tables: frontiers, speedups and ablation tables.

The two entry points are scripts (`python analysis/frontier.py`, `python analysis/ablation.py`);
the modules beside them hold the pieces. pandas, seaborn and matplotlib are imported only here
and in `medflip/results/table.py`.
"""
