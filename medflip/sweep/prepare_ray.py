"""`python -m medflip.data.prepare --address ...`: decode image shards as Ray tasks.

One task per shard (`medflip.data.prepare.run_job`), scheduled by Ray over the cluster's
nodes; the driver writes each shard as its task finishes, so the output needs no shared
storage (the dataset root must be readable on every node, as it is for training).
"""

from __future__ import annotations

from collections.abc import Iterator


def ray_map(jobs: list, address: str, in_flight: int = 64) -> Iterator:
    """`run_job` over `jobs` on the cluster at `address`, results as they finish (at most
    `in_flight` shards outstanding, so the driver's memory stays bounded)."""
    import ray

    from medflip.data.prepare import run_job

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    task = ray.remote(num_cpus=1)(run_job)
    try:
        pending, queue = [], list(jobs)
        while queue or pending:
            while queue and len(pending) < in_flight:
                pending.append(task.remote(queue.pop(0)))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
