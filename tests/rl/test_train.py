"""RLlib training (PPO and SAC, tiny budgets), checkpoint reload, batched inference and the runtime's rl scheme."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import load_scenario
from slicing.data.features import obs_dim

TINY = ["--scenario", "scenarios/idla.yaml", "--cells", "6", "--episode-len", "16"]


@pytest.fixture(scope="module")
def ppo_checkpoint(ray_session, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("rl_ppo")
    res = CliRunner().invoke(app, ["train-rl", *TINY, "--algo", "ppo", "--groups", "2", "--iterations", "2",
                                   "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    return summary, Path(summary["checkpoint"])


def test_ppo_trains_and_checkpoint_reloads(ppo_checkpoint):
    from ray.rllib.algorithms.algorithm import Algorithm

    summary, ckpt = ppo_checkpoint
    assert set(summary) == {"iterations", "env_steps", "agent_steps", "mean_reward", "checkpoint"}
    assert summary["iterations"] == 2 and summary["agent_steps"] >= 6 * summary["env_steps"] > 0
    assert summary["mean_reward"] is None or 0 <= summary["mean_reward"] <= 1
    assert (ckpt / "learner_group" / "learner" / "rl_module" / "group_1").is_dir()
    algo = Algorithm.from_checkpoint(str(ckpt))
    try:
        assert algo.iteration == 2
        assert algo.get_module("group_0") is not None and algo.get_module("group_1") is not None
    finally:
        algo.stop()


def test_sac_one_iteration(ray_session, tmp_path):
    from slicing.rl.train import TrainSettings, train

    sc = load_scenario("scenarios/idla.yaml")
    summary = train(sc, TrainSettings(algo="sac", groups=1, iterations=1, region=6, episode_len=16, train_batch=32),
                    tmp_path)
    assert summary["agent_steps"] > 0
    assert (Path(summary["checkpoint"]) / "learner_group" / "learner" / "rl_module" / "group_0").is_dir()
    from slicing.rl.inference import RlPolicy

    mask = np.ones((1000, 4), dtype=bool)
    x = RlPolicy.from_checkpoint(summary["checkpoint"]).allocate(np.full((1000, obs_dim(4)), 0.5, np.float32), mask)
    assert np.isfinite(x).all() and (x >= 0).all() and (x.sum(axis=1) <= 1 + 1e-9).all()


def test_rl_policy_allocates_1000_cells_in_one_call(ppo_checkpoint):
    from slicing.rl.inference import RlPolicy

    policy = RlPolicy.from_checkpoint(ppo_checkpoint[1])
    assert policy.groups == 2 and len(policy.version) == 12
    assert RlPolicy.from_checkpoint(ppo_checkpoint[1]).version == policy.version
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 2, (1000, obs_dim(4))).astype(np.float32)
    mask = rng.uniform(size=(1000, 4)) < 0.7
    x = policy.allocate(obs, mask)
    assert x.shape == (1000, 4) and np.isfinite(x).all() and (x >= 0).all()
    assert (x.sum(axis=1) <= 1 + 1e-9).all() and (x[~mask] == 0).all()
    np.testing.assert_array_equal(policy.allocate(obs, mask), x)  # deterministic


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


def test_train_settings_are_strict_and_checked_against_the_scenario():
    from pydantic import ValidationError

    from slicing.rl.train import TrainSettings, build_config

    with pytest.raises(ValidationError, match="episodes_len") as err:
        TrainSettings.model_validate({"episodes_len": 16})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError, match="algo"):
        TrainSettings(algo="dqn")
    sc = load_scenario("scenarios/idla.yaml")
    with pytest.raises(ValidationError, match=r"groups: at most one group per cell \(6 cells"):
        TrainSettings.model_validate({"groups": 7, "region": 6}, context={"scenario": sc})
    # a typo in the extra env config keys fails when the config is built, naming the key (no Ray needed)
    with pytest.raises(ValidationError, match="timline"):
        build_config(sc, TrainSettings(region=6, env_config={"timline": True}))
    config, _ = build_config(sc, TrainSettings(region=6, episode_len=16, env_config={"timeline": True}))
    assert config.env_config["timeline"] is True and config.env_config["cell_ids"] == list(range(6))
    assert set(config.env_config) == {"scenario", "cell_ids", "seed", "reward", "episode_len", "timeline"}


def test_train_needs_a_running_ray(monkeypatch, tmp_path):
    import ray

    from slicing.rl.train import TrainSettings, train

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match="ensure_ray"):
        train(load_scenario("scenarios/idla.yaml"), TrainSettings(region=3, iterations=0), tmp_path)


@pytest.mark.parametrize(("args", "needle"), [
    (["--algo", "dqn"], "--algo 'dqn': Input should be 'ppo' or 'sac'"),
    (["--reward", "max"], "--reward 'max': Input should be 'min' or 'sum_log'"),
    (["--groups", "7"], "--groups 7: at most one group per cell (6 cells in the region)"),
    (["--iterations", "0"], "--iterations"),
])
def test_cli_rejects_bad_values_naming_the_flag(args, needle):
    res = CliRunner().invoke(app, ["train-rl", *TINY, *args])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output


def test_bench_rl_small(ray_session):
    from slicing.bench.rl import bench_rl

    res = bench_rl(cells=6, episodes=1, rllib_agent_steps=96, inference_cells=2000, log=lambda m: None)
    assert set(res) == {"env_agent_steps_per_s", "rllib_agent_steps_per_s", "inference_100k_s"}
    assert all(v > 0 for v in res.values())


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
