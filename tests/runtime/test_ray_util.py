"""The one place that starts Ray, finds named actors and unwraps task errors (slicing/runtime/ray_util.py)."""

from __future__ import annotations

import pickle

import pytest

from slicing.errors import FieldError
from slicing.runtime.ray_util import NAMESPACE, ensure_ray, local_ray, named_actor, unwrap


def test_unwrap_returns_the_exception_a_real_ray_task_raised(ray_session):
    ray = ray_session

    @ray.remote
    def bad_record() -> None:
        raise FieldError(("records", 3, "cqi"), "must be in [0, 15]")

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(bad_record.remote())
    cause = unwrap(info.value, FieldError)
    assert type(cause) is FieldError and cause is not info.value
    assert cause.path == ("records", 3, "cqi") and cause.message == "must be in [0, 15]"
    assert unwrap(info.value) is cause  # any kind when none is named
    assert unwrap(info.value, KeyError) is info.value  # not one of the kinds asked for: the task error itself


def test_unwrap_leaves_other_errors_alone():
    err = ValueError("plain")
    assert unwrap(err) is err and unwrap(err, ValueError) is err
    odd = RuntimeError("cause is not an exception")
    odd.cause = "text"  # type: ignore[attr-defined]
    assert unwrap(odd) is odd
    assert pickle.loads(pickle.dumps(FieldError(("a",), "m"))).path == ("a",)  # what makes `cause` survive Ray


def test_ensure_ray_and_local_ray_leave_a_running_ray_alone(ray_session):
    ray = ray_session
    assert ensure_ray() is False  # already running: not started again
    with local_ray():
        assert ray.is_initialized()
    assert ray.is_initialized()  # local_ray did not start it, so it does not shut it down


def test_named_actor_finds_actors_of_the_namespace_only(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self) -> str:
            return "pong"

    with pytest.raises(ValueError):
        named_actor("slicing-no-such-actor")
    handle = Echo.options(name="slicing-test-echo", namespace=NAMESPACE).remote()
    try:
        assert ray.get(named_actor("slicing-test-echo").ping.remote()) == "pong"
        other = Echo.options(name="slicing-test-elsewhere", namespace="not-slicing").remote()
        with pytest.raises(ValueError):
            named_actor("slicing-test-elsewhere")
        ray.kill(other)
    finally:
        ray.kill(handle)
