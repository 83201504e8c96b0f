"""RLlib training (slicing/rl/train.py): PPO and SAC at tiny budgets, checkpoint reload, the Ray precondition.

The PPO checkpoint is the session fixture ``ppo_checkpoint`` of tests/rl/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.data.features import obs_dim


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


def test_train_needs_a_running_ray(monkeypatch, tmp_path):
    import ray

    from slicing.rl.train import TrainSettings, train

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match="ensure_ray"):
        train(load_scenario("scenarios/idla.yaml"), TrainSettings(region=3, iterations=0), tmp_path)
