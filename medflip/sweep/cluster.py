"""Ray start-up, per-trial resources, trial concurrency, and leftovers of aborted sweeps.

The one rule that keeps a sweep from deadlocking: a Tune trial here is only a driver that
starts a Ray Train worker group, so the driver reserves no CPU or GPU (only a little memory)
and at most as many trials run at once as the cluster can give a *full worker group* to.
Otherwise the drivers take every CPU and no worker group ever starts.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help and bad flags answered before Ray and pandas load
    from medflip.sweep.tool_parsers import cluster_parser

    cluster_parser().parse_args()

import json
import math
import os
import socket
import time
from dataclasses import dataclass

import ray

from medflip.sweep import raycompat

# The Tune trial's own process (train_driver_fn): it only waits on the Train controller.
DRIVER_MEMORY_BYTES = 128 * 2**20
JOBS_FILE = "medflip_jobs.json"
DASHBOARD_PORT = 8265  # Ray's default; a local sweep's Ray takes another when it is in use


@dataclass(frozen=True)
class Resources:
    """What one trial asks for: a worker group of `num_workers` x (cpus, gpus)."""

    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    def per_worker(self) -> dict[str, float]:
        out = {"CPU": float(self.cpus_per_worker)}
        if self.use_gpu:
            out["GPU"] = float(self.gpus_per_worker)
        return out


def connect(address: str | None, env_vars: dict[str, str] | None = None) -> dict:
    """Join `address` ("auto" = the cluster `ray start --head` started) or start local Ray.

    Local Ray gets every core of this machine. The dashboard stays on: without it Ray's
    own clean-up of a finished job is incomplete. Returns the cluster's total resources.
    """
    env = dict(env_vars or {})
    if address:
        # Ray's own helpers inside actors (e.g. Train's placement-group cleaner) find the
        # cluster by RAY_ADDRESS, else by scanning for GCS processes, which fails when a
        # machine runs two Ray instances: the cleaner then dies and an aborted sweep leaves
        # its placement groups behind. So resolve the address once and hand it down.
        address = resolve_address(address)
        env.setdefault("RAY_ADDRESS", address)
        ray.init(address=address, runtime_env={"env_vars": env})
    else:
        # "local": a Ray of its own, even where another instance runs on this machine
        # (preflight already refused when Ray would rather join a recorded cluster). Ray's
        # helpers that look their cluster up (Train's placement-group cleaner: the state API
        # without an address) then see two GCS processes and die with a traceback, so the
        # dashboard gets a port chosen here and they are told where it is.
        port = free_port(DASHBOARD_PORT)
        env.setdefault("RAY_API_SERVER_ADDRESS", f"http://127.0.0.1:{port}")
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            dashboard_port=port,
            runtime_env={"env_vars": env},
        )
    return dict(ray.cluster_resources())


def free_port(preferred: int) -> int:
    """`preferred` when nothing listens there on loopback, else a port the OS picks."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def resolve_address(address: str) -> str:
    """ "auto" -> host:port the way `ray.init("auto")` finds it (RAY_ADDRESS, then the
    address `ray start` recorded); anything else is returned as given."""
    if address != "auto":
        return address
    return raycompat.bootstrap_address_or_die("auto")


def node_resources() -> list[dict[str, float]]:
    """Total resources of each alive node."""
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def default_resources(
    nodes: list[dict[str, float]],
    num_workers: int,
    cpus_per_worker: float | None,
    gpus_per_worker: float | None,
) -> Resources:
    """Fill in what the user left out, from the cluster's nodes.

    GPUs: one per worker where the cluster has any, else none. CPUs: with GPUs, a node's
    CPUs shared evenly among its GPUs; CPU-only, a whole node shared among the trial's
    workers (on a 2-core laptop: one worker with both cores; torch wants the cores).
    The flags' own ranges are plan.validate's (checked before this runs).
    """
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if any(n.get("GPU", 0) > 0 for n in nodes) else 0.0
    if cpus_per_worker is None:
        if gpus_per_worker > 0:
            gpu_nodes = [n for n in nodes if n.get("GPU", 0) > 0] or nodes
            per_gpu = min(n.get("CPU", 1) / max(n.get("GPU", 1), 1) for n in gpu_nodes)
            cpus_per_worker = max(1.0, math.floor(per_gpu * gpus_per_worker))
        else:
            biggest = max((n.get("CPU", 1) for n in nodes), default=1)
            cpus_per_worker = max(1.0, math.floor(biggest / num_workers))
    return Resources(num_workers, float(cpus_per_worker), float(gpus_per_worker))


def workers_that_fit(nodes: list[dict[str, float]], res: Resources) -> int:
    """How many workers of this shape the nodes hold at once (bin by bin, per node)."""
    total = 0
    for n in nodes:
        fits = math.floor(n.get("CPU", 0) / res.cpus_per_worker + 1e-9)
        if res.use_gpu:
            fits = min(fits, math.floor(n.get("GPU", 0) / res.gpus_per_worker + 1e-9))
        total += max(0, fits)
    return total


def trial_concurrency(nodes: list[dict[str, float]], res: Resources, requested: int | None) -> int:
    """Trials that can run at once without waiting for each other's workers.

    Raises naming the flags when not even one trial's worker group fits the cluster.
    """
    fit = workers_that_fit(nodes, res) // res.num_workers
    if fit < 1:
        have = {k: sum(n.get(k, 0) for n in nodes) for k in ("CPU", "GPU")}
        need = {k: v * res.num_workers for k, v in res.per_worker().items()}
        raise ValueError(
            f"one trial needs {need} ({res.num_workers} workers x {res.per_worker()}) but the "
            f"cluster has {have}: lower --workers-per-trial, --cpus-per-worker or "
            "--gpus-per-worker"
        )
    return fit if requested is None else min(requested, fit)  # >= 1: plan.validate


def record_job(experiment_dir: str) -> None:
    """Remember this driver's Ray job id in the experiment, to find its leftovers later."""
    path = os.path.join(experiment_dir, JOBS_FILE)
    jobs = _read_jobs(experiment_dir)
    job = ray.get_runtime_context().get_job_id()
    if job not in jobs:
        jobs.append(job)
    os.makedirs(experiment_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(jobs, f)
    os.replace(tmp, path)


def _read_jobs(experiment_dir: str) -> list[str]:
    try:
        with open(os.path.join(experiment_dir, JOBS_FILE)) as f:
            return list(json.load(f))
    except (OSError, ValueError):
        return []


def leftover_placement_groups(experiment_dir: str) -> list[dict]:
    """Placement groups still holding resources for earlier drivers of this experiment.

    An aborted sweep on a persistent cluster can leave its worker groups' placement groups
    behind; they hold CPUs/GPUs that the new sweep's worker groups then wait for forever.
    """
    from ray.util.state import list_placement_groups

    mine = set(_read_jobs(experiment_dir)) - {ray.get_runtime_context().get_job_id()}
    if not mine:
        return []
    groups = list_placement_groups(
        address=ray.get_runtime_context().gcs_address,
        detail=True,
        limit=10000,
        raise_on_missing_output=False,
    )
    return [
        {
            "id": g.placement_group_id,
            "job": g.creator_job_id,
            "state": g.state,
            "bundles": g.bundles,
        }
        for g in groups
        if g.creator_job_id in mine and g.state in ("CREATED", "PENDING", "RESCHEDULING")
    ]


def wait_for_leftovers(experiment_dir: str, timeout_s: float = 30.0) -> list[dict]:
    """Leftovers still there after giving Ray's own clean-up `timeout_s` to remove them."""
    deadline = time.monotonic() + timeout_s
    while True:
        leftovers = leftover_placement_groups(experiment_dir)
        if not leftovers or time.monotonic() >= deadline:
            return leftovers
        time.sleep(2.0)


def clear_hint(experiment_dir: str, leftovers: list[dict]) -> str:
    """What to tell the user about leftovers (and the one command that clears them)."""
    ids = ", ".join(g["id"] for g in leftovers)
    return (
        f"{len(leftovers)} placement group(s) left by an earlier driver of this experiment still "
        f"hold cluster resources ({ids}); new worker groups may wait for them forever.\n"
        "Clear them with: python -m medflip.sweep.cluster --address auto --clear "
        f"{experiment_dir}\n"
        "(or restart the cluster: ray stop && ray start --head ...)"
    )


def remove_placement_groups(ids: list[str]) -> int:
    """Remove placement groups by hex id; returns how many were removed."""
    from ray.util.placement_group import remove_placement_group

    for pg_id in ids:
        remove_placement_group(raycompat.placement_group(pg_id))
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    """`python -m medflip.sweep.cluster --address auto --clear RUN_DIR`: list or clear leftovers."""
    from medflip.sweep.tool_parsers import cluster_parser

    args = cluster_parser().parse_args(argv)
    ray.init(address=args.address)
    leftovers = leftover_placement_groups(args.run_dir)
    for g in leftovers:
        print(json.dumps(g))
    if args.clear and leftovers:
        print(f"removed {remove_placement_groups([g['id'] for g in leftovers])} placement groups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
