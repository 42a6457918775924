"""The training loop and what it calls: one step, the schedule, checkpoints, ranks."""
