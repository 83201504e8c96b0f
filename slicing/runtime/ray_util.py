"""The one place that starts Ray, finds the named actors and unwraps Ray task errors.

- ``ensure_ray``/``local_ray``: the embedded local Ray of the entry points (CLI commands, experiment drivers,
  benchmarks), on 127.0.0.1 only (``loopback_ray``) and without a dashboard; library code below ``runtime`` never
  starts Ray itself.
- ``NAMESPACE`` and ``named_actor``: the service's detached actors (``slicing-population``, ``slicing-transfer``).
- ``unwrap``: the user exception inside a ``RayTaskError`` (Ray re-raises a task's exception as a subclass of it
  that carries the original in ``cause``), so a ``FieldError`` raised in an actor arrives as itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAMESPACE = "slicing"


LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_ray() -> None:
    """Make the next embedded local Ray take 127.0.0.1 as its node address, so its GCS, raylet and object manager
    listen on loopback only. Ray resolves 127.0.0.1 to the host's interface address unless its multi-node switch
    (``LOOPBACK_SWITCH``) is off; Ray reads that when it is imported, so it is set here and, if Ray is imported
    already, also in Ray's constants (read at ``ray.init``). An explicit value in the environment wins."""
    os.environ.setdefault(LOOPBACK_SWITCH, "0")
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = os.environ[LOOPBACK_SWITCH].lower() in ("1", "true")


def ensure_ray(num_cpus: int = 2, address: str | None = None) -> bool:
    """Connect to Ray unless this process already is: to ``address`` (``auto``, ``host:port``) when given, else to
    the cluster ``RAY_ADDRESS`` names (set by ``ray job submit`` in a job's driver), else start a local Ray
    (loopback, no dashboard). True if this call connected or started it."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "local":
        loopback_ray()
    import ray

    if ray.is_initialized():
        return False
    if address is None or address == "local":
        ray.init(address="local", include_dashboard=False, num_cpus=num_cpus, log_to_driver=False)
    else:  # a cluster: its resources are its own; the job's logs are the driver's, so workers' lines go there too
        ray.init(address=address)
    return True


@contextmanager
def local_ray(num_cpus: int = 2, address: str | None = None) -> Iterator[None]:
    """``ensure_ray`` for the duration of a block; disconnects after only if the block connected."""
    started = ensure_ray(num_cpus, address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def named_actor(name: str) -> Any:
    """The handle of the named actor in ``NAMESPACE``; ``ValueError`` if it is not running."""
    import ray

    return ray.get_actor(name, namespace=NAMESPACE)


def unwrap(err: BaseException, *kinds: type[BaseException]) -> BaseException:
    """The exception a Ray task raised (``err.cause``), if it is one of ``kinds`` (any, when none are given);
    else ``err`` itself."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException) and (not kinds or isinstance(cause, kinds)):
        return cause
    return err
