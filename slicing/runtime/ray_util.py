"""The one place that starts Ray, finds the named actors and unwraps Ray task errors.

- ``ensure_ray``/``local_ray``: the embedded local Ray of the entry points (CLI commands, experiment drivers,
  benchmarks); library code below ``runtime`` never starts Ray itself.
- ``NAMESPACE`` and ``named_actor``: the service's detached actors (``slicing-population``, ``slicing-transfer``).
- ``unwrap``: the user exception inside a ``RayTaskError`` (Ray re-raises a task's exception as a subclass of it
  that carries the original in ``cause``), so a ``FieldError`` raised in an actor arrives as itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAMESPACE = "slicing"


def ensure_ray(num_cpus: int = 2) -> bool:
    """Start a local Ray (loopback, no dashboard) unless one is running; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address="local", include_dashboard=False, num_cpus=num_cpus, log_to_driver=False)
    return True


@contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    """``ensure_ray`` for the duration of a block; shuts Ray down after only if the block started it."""
    started = ensure_ray(num_cpus)
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
