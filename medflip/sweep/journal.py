"""Where a sweep's Optuna study lives: one journal file in the experiment dir, written by the
searcher (searched sweeps) or by grid_journal.GridStudyRecorder (grid sweeps), read by
optuna-dashboard. Its own module so tuning and grid_journal both use it without a cycle."""

from __future__ import annotations

import os

STUDY_FILE = "optuna_study.journal"


def study_path(experiment_dir: str) -> str:
    """The Optuna study of a searched sweep: `optuna-dashboard <this file>` shows it live."""
    return os.path.join(experiment_dir, STUDY_FILE)


def journal_storage(experiment_dir: str):
    """Optuna's JournalStorage in the experiment dir (append-only, file-locked): the
    dashboard reads the live study from it, and the searcher state Tune pickles holds only
    the storage's path, not every trial (JournalStorage replays the file when unpickled,
    so a resumed sweep keeps writing the same study)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    os.makedirs(experiment_dir, exist_ok=True)
    return JournalStorage(JournalFileBackend(study_path(experiment_dir)))
