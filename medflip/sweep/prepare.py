"""`python -m medflip.sweep.prepare --address ADDR ...`: decode image shards as Ray tasks.

The cluster form of `python -m medflip.data.prepare` (same flags; Ray lives in this layer).

One task per shard (`medflip.data.prepare.run_job`), scheduled by Ray over the cluster's
nodes; the driver writes each shard as its task finishes, so the output needs no shared
storage (the dataset root must be readable on every node, as it is for training).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator

from medflip.data import prepare


def ray_map(jobs: list, address: str, in_flight: int = 64) -> Iterator:
    """`run_job` over `jobs` on the cluster at `address`, results as they finish (at most
    `in_flight` shards outstanding, so the driver's memory stays bounded)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    task = ray.remote(num_cpus=1)(prepare.run_job)
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


def mapper(address: str):
    """The shard mapper `medflip.data.prepare.prepare` takes: Ray tasks at `address`."""
    return functools.partial(ray_map, address=address)


if __name__ == "__main__":
    sys.exit(prepare.main(ray_mapper=mapper))
