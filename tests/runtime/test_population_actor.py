"""The population as a named Ray actor (slicing/runtime/population_actor.py): its periodic driver loop in-process,
and the actor serving reads while it advances."""

from __future__ import annotations

import time

import pytest

from slicing.models.qos_estimator import model_version
from slicing.runtime.population_actor import PopulationService
from slicing.runtime.shard import UnknownCell
from tests.runtime.helpers import record


def _wait_for_period(svc: PopulationService, period: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while svc.period() < period and time.monotonic() < deadline:
        time.sleep(0.02)
    assert svc.period() >= period, f"the loop did not reach period {period} in {timeout_s} s"


def test_loop_advances_every_period_and_stops(scenario):
    svc = PopulationService(scenario, 2, "traffic", in_process=True)
    with pytest.raises(ValueError, match="period_s"):
        svc.run_periods_every(0)
    assert svc.period() == 0 and not svc.running()
    assert svc.run_periods_every(0.05)
    assert not svc.run_periods_every(0.05)  # already running: no second loop
    _wait_for_period(svc, 3)
    assert svc.stop() and not svc.running()
    stopped_at = svc.period()
    time.sleep(0.2)
    assert svc.period() == stopped_at and not svc.stop()  # stopped for good; a second stop is a no-op
    assert [t["period"] for t in svc.timings(last=3)] == list(range(stopped_at - 3, stopped_at))
    assert svc.last_error() is None and svc.allocation(4)["period"] == stopped_at
    svc.shutdown()


def test_a_failing_period_keeps_the_last_allocations_and_is_reported(scenario, monkeypatch):
    svc = PopulationService(scenario, 1, "traffic", in_process=True)
    svc.run_period()
    before = svc.allocation(7)
    real = svc.population.run_period

    def broken(*args, **kwargs):
        raise RuntimeError("shard lost")

    monkeypatch.setattr(svc.population, "run_period", broken)
    assert svc.run_periods_every(0.02)
    deadline = time.monotonic() + 10
    while svc.last_error() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert svc.last_error() == "RuntimeError: shard lost"
    assert svc.running() and svc.allocation(7) == before  # reads still answer, from the last good period
    monkeypatch.setattr(svc.population, "run_period", real)  # the next round succeeds: the error clears
    _wait_for_period(svc, 2)
    deadline = time.monotonic() + 10
    while svc.last_error() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert svc.last_error() is None
    svc.shutdown()
    assert not svc.running()


def test_population_actor_serves_and_advances(ray_session, tmp_path, scenario, model):
    import ray

    from slicing.models.qos_estimator import estimator_from_payload
    from slicing.runtime.population_actor import get_population_actor, start_population_actor, stop_population_actor

    start_population_actor(scenario, 2, "idla", model, str(tmp_path))
    actor = get_population_actor()
    try:
        assert ray.get(actor.ready.remote()) and ray.get(actor.n_cells.remote()) == 36
        assert ray.get(actor.cell_ids.remote(3, 0)) == [0, 1, 2]
        version = ray.get(actor.model_version.remote())
        assert version == model_version(model)
        assert estimator_from_payload(ray.get(actor.estimator_payload.remote())).version == version
        assert ray.get(actor.ingest.remote([record(4)])) == 1
        with pytest.raises(UnknownCell):
            ray.get(actor.allocation.remote(99))
        assert ray.get(actor.run_periods_every.remote(0.2))
        deadline = time.monotonic() + 60
        while ray.get(actor.period.remote()) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.get(actor.stop.remote())
        period = ray.get(actor.period.remote())
        assert period >= 6 and ray.get(actor.last_error.remote()) is None
        a = ray.get(actor.allocation.remote("5"))
        assert a["period"] == period and a["model_version"] == version
        assert len(a["slices"]) == (4 if period >= 7 else 3)  # slice 3 joins at period 7
    finally:
        assert stop_population_actor()
    with pytest.raises(LookupError):
        get_population_actor()


def test_a_killed_population_actor_restarts_where_it_was_and_resumes_its_loop(ray_session, tmp_path, scenario, model):
    """SIGKILL of the actor's process: Ray restarts it (storage given, so max_restarts=-1); it restores its shards'
    checkpoints (the old shards died with it), keeps the KPI record it acknowledged, and its loop runs again."""
    import os
    import signal

    import ray

    from slicing.runtime.population_actor import start_population_actor, stop_population_actor

    actor = start_population_actor(scenario, 2, "idla", model, str(tmp_path))
    try:
        for _ in range(5):
            ray.get(actor.run_period.remote())
        assert ray.get(actor.run_periods_every.remote(3.0))  # slow: the record stays in the 5-period history
        assert ray.get(actor.ingest.remote([record(4, users=777.0)])) == 1
        before = ray.get(actor.period.remote())
        pid, shard_pids = ray.get(actor.pid.remote()), [i["pid"] for i in ray.get(actor.shard_info.remote())]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the same handle answers again, from another process
            try:
                if ray.get(actor.pid.remote(), timeout=10) != pid:
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(0.2)
        assert ray.get(actor.pid.remote()) != pid
        infos = ray.get(actor.shard_info.remote())
        assert all(i["restored"] for i in infos) and not {i["pid"] for i in infos} & set(shard_pids)
        resumed = ray.get(actor.period.remote())
        assert before <= resumed <= before + 2  # where it was (a period may have finished after `before` was read)
        assert 777.0 in ray.get(actor.history_of.remote(4, "01-000001"))["users"]
        deadline = time.monotonic() + 60
        while ray.get(actor.period.remote()) < resumed + 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # nobody calls run_period: the restarted actor's own loop does
        assert ray.get(actor.period.remote()) >= resumed + 1 and ray.get(actor.running.remote())
    finally:
        assert stop_population_actor(actor)
