"""Every private Ray API medflip uses, behind one name each (Ray is pinned to 2.60.*).

Ray has no public way to do these; when a Ray upgrade moves one, this module is the only
place to change. Each function says which private name it stands for.
"""

from __future__ import annotations

import logging


def bootstrap_address(address: str | None) -> str | None:
    """The GCS host:port `ray.init(address)` would join, or None where it would start a
    new local Ray. `None` follows RAY_ADDRESS, then the address the last `ray start`
    recorded; "auto" also any running GCS. (ray._private.services)"""
    from ray._private import services

    # Its "Found multiple active Ray instances" warning is about guessing, which the
    # callers here replace by a message of their own.
    quiet = logging.getLogger(services.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return services.canonicalize_bootstrap_address(address)
    finally:
        quiet.setLevel(level)


def recorded_address() -> str | None:
    """The cluster a plain `ray.init()` would join, as given: RAY_ADDRESS, else what the
    last `ray start` recorded; None where it would start a new local Ray.
    (ray._private.services.get_ray_address_from_environment)"""
    from ray._private import services

    found = services.get_ray_address_from_environment(None, None)
    return None if found in (None, "", "local") else found


def bootstrap_address_or_die(address: str) -> str:
    """As `bootstrap_address`, raising ConnectionError when there is no single cluster."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    return canonicalize_bootstrap_address_or_die(address)


def placement_group(hex_id: str):
    """The PlacementGroup handle of a hex id from the state API (ray._raylet)."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup

    return PlacementGroup(PlacementGroupID.from_hex(hex_id))


def train_report_logger_name() -> str:
    """Ray Train 2.60 logs every report's metrics at INFO from a logger named by its
    file path (ray.train.v2._internal.execution.context)."""
    from ray.train.v2._internal.execution import context

    return context.__file__


def restored_run_config(tuner):
    """The RunConfig a `Tuner.restore` loaded (no public getter; Tuner._local_tuner)."""
    return tuner._local_tuner.get_run_config()


def restored_search_alg(tuner):
    """The search algorithm a `Tuner.restore` unpickled (TunerInternal._tune_config)."""
    return tuner._local_tuner._tune_config.search_alg


def optuna_study(search):
    """The optuna.Study inside Ray's OptunaSearch (OptunaSearch._ot_study)."""
    return search._ot_study
