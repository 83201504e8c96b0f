"""The ``rl`` allocation scheme (slicing/rl/scheme.py): registered from above, a trained policy behind the
scheme interface, in the runtime's population and in the service's POST /v1/allocate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.data.features import obs_dim


def test_importing_registers_rl_and_it_needs_a_checkpoint():
    from slicing.optim.schemes import SCHEMES, UnknownSchemeError, make_scheme
    from slicing.rl import scheme

    assert SCHEMES[scheme.NAME] is scheme.make_rl_scheme
    with pytest.raises(UnknownSchemeError, match="needs an RL checkpoint"):
        make_scheme("rl")


def test_scheme_is_the_policy_on_the_context_observations(ppo_checkpoint):
    from slicing.optim.schemes import AllocationContext, make_scheme
    from slicing.rl.inference import RlPolicy

    scheme = make_scheme("rl", checkpoint=str(ppo_checkpoint[1]))
    policy = RlPolicy.from_checkpoint(ppo_checkpoint[1])
    assert scheme.name == "rl" and scheme.needs_obs and not scheme.needs_model and scheme.version == policy.version
    rng = np.random.default_rng(5)
    obs = rng.uniform(0, 2, (8, obs_dim(4))).astype(np.float32)
    mask = rng.uniform(size=(8, 4)) < 0.6
    ctx = AllocationContext(period=0, cell_ids=np.arange(8), mask=mask, obs=obs)
    np.testing.assert_array_equal(scheme.allocate(ctx), policy.allocate(obs, mask))
    with pytest.raises(ValueError, match="rl scheme needs obs"):
        scheme.allocate(AllocationContext(period=0, cell_ids=np.arange(8), mask=mask))


def test_population_runs_rl_scheme(ppo_checkpoint):
    from slicing.runtime.population import Population

    sc = load_scenario("scenarios/idla.yaml", ["topology.sites=6"])
    with pytest.raises(ValueError, match="rl_checkpoint"):
        Population(sc, shards=2, scheme="rl", in_process=True)
    pop = Population(sc, shards=2, scheme="rl", in_process=True, rl_checkpoint=str(ppo_checkpoint[1]))
    for _ in range(3):
        stats = pop.run_period()
        assert stats["fallback_cells"] == 0 and not stats["errors"]
    x = pop.allocations_array()
    assert (x >= 0).all() and (x.sum(axis=1) <= 1 + 1e-9).all()
    assert pop.allocation(4)["scheme"] == "rl" and pop.allocation(4)["model_version"] != "none"


# ------------------------------------------------------------------------- scheme rl of POST /v1/allocate


def _rl_service(ckpt: Path | None):
    from slicing.models.qos_estimator import build_estimator
    from slicing.serve.service import SlicingService
    from slicing.serve.settings import ServiceSettings

    svc = SlicingService(ServiceSettings(rl_checkpoint=ckpt), population_lookup=lambda: None)
    svc.estimators.load_rl()
    svc.estimators.set_model(build_estimator((16, 8), seed=1), "test")
    return svc


def test_service_rl_scheme_is_the_policy_on_request_observations(ppo_checkpoint):
    from slicing.bench.serve import random_cells
    from slicing.data.features import build_observations
    from slicing.rl.inference import RlPolicy
    from slicing.serve.models import AllocateRequest

    _, ckpt = ppo_checkpoint
    svc = _rl_service(ckpt)
    policy = RlPolicy.from_checkpoint(ckpt)
    cells = random_cells(40, np.random.default_rng(4), (1, 4), last_period=True)
    out = svc.allocate(AllocateRequest.model_validate({"scheme": "rl", "cells": cells}))
    assert out["model_version"] == policy.version != svc.estimators.model_version
    # the same observation built by hand, slot j = the request's j-th slice
    n = len(cells)
    mask = np.zeros((n, 4), dtype=bool)
    grids = {k: np.zeros((n, 4)) for k in ("users", "util", "tp", "nbr")}
    req = np.ones((n, 4))
    for i, c in enumerate(cells):
        for j, sl in enumerate(c["slices"]):
            mask[i, j] = True
            grids["users"][i, j] = sl["users_history"][-1]
            grids["util"][i, j] = sl["last_period"]["prb_util"]
            grids["tp"][i, j] = sl["last_period"]["throughput_mbps"]
            grids["nbr"][i, j] = sl["last_period"]["nbr_prb_util"]
            req[i, j] = sl["throughput_req_mbps"]
    obs = build_observations(grids["users"], grids["util"], grids["tp"], mask, mask, req, grids["nbr"])
    expect = policy.allocate(obs, mask)
    for i, a in enumerate(out["allocations"]):
        got = [s["share"] for s in a["slices"]]
        assert got == pytest.approx(expect[i, : len(got)].tolist(), abs=1e-6)  # float32 request arrays
        assert sum(got) <= 1 + 1e-9


def test_service_rl_scheme_errors_name_the_field(ppo_checkpoint):
    from slicing.bench.serve import random_cells
    from slicing.serve.errors import ServiceError
    from slicing.serve.models import AllocateRequest

    _, ckpt = ppo_checkpoint
    svc = _rl_service(ckpt)
    cells = random_cells(2, np.random.default_rng(1), (2, 2), last_period=True)
    del cells[1]["slices"][1]["last_period"]
    with pytest.raises(ServiceError) as err:
        svc.allocate(AllocateRequest.model_validate({"scheme": "rl", "cells": cells}))
    assert err.value.status == 422 and err.value.path == "body.cells.1.slices.1.last_period"
    five = random_cells(1, np.random.default_rng(2), (5, 5), last_period=True)
    with pytest.raises(ServiceError) as err:
        svc.allocate(AllocateRequest.model_validate({"scheme": "rl", "cells": five}))
    assert err.value.status == 422 and err.value.path == "body.cells.0.slices" and "at most 4" in err.value.detail
    no_rl = _rl_service(None)
    ok = random_cells(1, np.random.default_rng(3), (2, 2), last_period=True)
    with pytest.raises(ServiceError) as err:
        no_rl.allocate(AllocateRequest.model_validate({"scheme": "rl", "cells": ok}))
    assert err.value.status == 422 and err.value.path == "body.scheme" and "SLICING_RL_CHECKPOINT" in err.value.detail
    broken = _rl_service(Path("/nonexistent/checkpoint"))
    with pytest.raises(ServiceError) as err:
        broken.allocate(AllocateRequest.model_validate({"scheme": "rl", "cells": ok}))
    assert err.value.status == 422 and "failed to load" in err.value.detail


def test_an_rl_checkpoint_is_pushed_switched_at_the_next_period_rolled_back_and_kept(ppo_checkpoint, tmp_path):
    """RL roll-out in the population: a pushed archive is validated, staged, used by every shard of scheme rl from
    the next period, rolled back by version, and kept across a restart on the same storage."""
    from slicing.errors import FieldError
    from slicing.rl.inference import RlPolicy, pack_checkpoint, policy_from_archive
    from slicing.rl.train import TrainSettings, train
    from slicing.runtime.population import Population

    sc = load_scenario("scenarios/idla.yaml", ["topology.sites=6"])
    other = train(sc, TrainSettings(algo="ppo", iterations=0, region=6, episode_len=4, hidden=(16,), seed=7),
                  tmp_path / "other")["checkpoint"]
    first = RlPolicy.from_checkpoint(ppo_checkpoint[1]).version
    blob = pack_checkpoint(other)
    second = policy_from_archive(blob).version
    assert second != first
    store = str(tmp_path / "store")
    pop = Population(sc, shards=2, scheme="rl", in_process=True, rl_checkpoint=str(ppo_checkpoint[1]),
                     storage=store)
    pop.run_period()
    assert pop.models()["rl"]["active"] == first
    for bad, why in ((b"not a tar", "not a gzipped tar"), (pack_checkpoint(other)[:200], "not a gzipped tar")):
        with pytest.raises(FieldError, match=why):
            pop.push_rl_model(bad)
    staged = pop.push_rl_model(blob)
    assert staged == {"version": second, "status": "pending", "effective_period": pop.period() + 1}
    assert {pop.allocation(c)["model_version"] for c in range(sc.cells)} == {first}  # not before the boundary
    pop.run_period()
    assert {pop.allocation(c)["model_version"] for c in range(sc.cells)} == {second}
    listed = pop.models()["rl"]
    assert listed["active"] == second and [v["status"] for v in listed["versions"]] == ["active", "previous"]
    assert pop.rl_archive() == blob
    # a restart on the same storage goes on with the pushed version and still knows the first
    again = Population(sc, shards=2, scheme="rl", in_process=True, rl_checkpoint=str(ppo_checkpoint[1]),
                       storage=store)
    assert again.rl_version() == second and [v["version"] for v in again.models()["rl"]["versions"]] == [second,
                                                                                                        first]
    again.run_period()
    assert {again.allocation(c)["model_version"] for c in range(sc.cells)} == {second}
    assert again.activate_model(first)["status"] == "pending"  # roll back
    again.run_period()
    assert {again.allocation(c)["model_version"] for c in range(sc.cells)} == {first}
