"""Checks a sweep runs before it starts Ray: the cluster address and the storage.

Each failed check raises one `PreflightError` saying what is wrong and what to do, so a
bad setup fails in seconds at start -- instead of Ray retrying a dead address for half a
minute, or results being half-written to a full or read-only disk. (A cluster too small
for one trial is caught by `cluster.trial_concurrency`, also before any trial starts.)
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from medflip.sweep import raycompat

MiB = 2**20
PROBE_BYTES = 64 * 1024  # written and fsynced: a full disk fails here, not mid-sweep

START_HINT = (
    "Start a cluster first:\n"
    "  make cluster-up                 one machine: head on loopback, token auth, dashboard\n"
    "  ray start --head ...            a real cluster: see README 'On a cluster'\n"
    "then run the sweep again (drivers need RAY_AUTH_MODE=token and the head's token); or\n"
    "leave out --address to run the sweep on a Ray started just for it."
)
NO_CLUSTER = f"no running Ray cluster was found for --address auto. {START_HINT}"


TOKEN_HINT = (
    "The cluster runs with token authentication (README 'On a cluster'): export "
    "RAY_AUTH_MODE=token and give this driver the head's token -- copy it to "
    "~/.ray/auth_token, or set RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=TOKEN. On the head, "
    "`ray get-auth-token` prints it."
)


class PreflightError(RuntimeError):
    """A setup problem found before the sweep started; the message says how to fix it."""


def _reachable(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_address(address: str | None, timeout_s: float = 3.0) -> str | None:
    """The GCS address to join, or None to start a local Ray for this sweep.

    `auto` follows Ray's own rules (RAY_ADDRESS, the last `ray start` on this machine, a
    running GCS process) and must find a cluster that answers; `host:port` must answer.
    """
    if address == "local":
        return None
    if address in (None, ""):
        joined = raycompat.recorded_address()
        if joined:  # ray.init() would join it, and then refuse the local sizing
            raise PreflightError(existing_cluster_message(joined))
        return None
    if address == "auto":
        try:
            address = raycompat.bootstrap_address("auto")
        except ConnectionError:
            raise PreflightError(NO_CLUSTER) from None
        if address is None:
            raise PreflightError(NO_CLUSTER)
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise PreflightError(f"--address {address!r}: expected auto or HOST:PORT")
    if not _reachable(host.strip("[]"), int(port), timeout_s):
        raise PreflightError(
            f"--address {address}: nothing answers there (cluster stopped or "
            f"wrong port?). {START_HINT}"
        )
    return address


def existing_cluster_message(address: str) -> str:
    """One line: Ray would join the cluster at `address`; say how to choose."""
    source = (
        "RAY_ADDRESS names it"
        if os.environ.get("RAY_ADDRESS")
        else "`ray start` / make cluster-up recorded it"
    )
    return (
        f"a Ray cluster is already running at {address} ({source}): pass --address auto to "
        "run this sweep on it, or stop it (make cluster-down) or unset RAY_ADDRESS to run "
        "the sweep on a Ray started just for it"
    )


def connect_error(address: str | None, exc: BaseException) -> PreflightError:
    """Turn ray.init's generic "Failed to connect" into what went wrong: the token, or no
    cluster at that address."""
    text, e = [], exc
    while e is not None and len(text) < 10:
        text.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    joined = "\n".join(text)
    if "InvalidAuthToken" in joined or "AuthenticationError" in joined:
        return PreflightError(
            f"--address {address}: the cluster rejected this driver's "
            f"authentication token.\n{TOKEN_HINT}"
        )
    return PreflightError(f"--address {address}: could not join the cluster ({exc}). {START_HINT}")


def check_storage(storage: str, min_free_mb: float = 256.0) -> str:
    """Make sure a sweep can write under the directory `storage`; returns its absolute path.

    Checks the free space first, then writes and removes a fsynced probe file in it
    (creating the directory for that, and removing again what it created): leaves nothing.
    URIs (s3://...) are refused: the results table needs a POSIX path (mount the bucket).
    """
    if "://" in storage:
        raise PreflightError(
            f"--storage {storage}: URIs are not supported (results.parquet needs a POSIX "
            "path); use a shared filesystem, or mount the bucket at the same path on every node"
        )
    path = os.path.abspath(os.path.expanduser(storage))
    existing = path
    while not os.path.exists(existing):  # free space where the directory will be created
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free if os.path.isdir(existing) else None
    if free is not None and free < min_free_mb * MiB:
        raise PreflightError(
            f"--storage {storage}: only {free / MiB:.1f} MiB free, a sweep "
            f"needs at least {min_free_mb:g} MiB (checkpoints, results); "
            f"free some space or point --storage elsewhere"
        )
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".medflip-probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise PreflightError(
            f"--storage {storage}: not writable ({e.strerror or e}); "
            f"choose a directory this user can write"
        ) from None
    finally:  # leave no trace: the sweep creates what it needs once everything checked out
        created = path
        while created != existing and os.path.isdir(created) and not os.listdir(created):
            os.rmdir(created)
            created = os.path.dirname(created)
    return path
