"""`slicing bench rl`: throughput of the multi-agent env, of RLlib sampling on it, and of batched inference.

- ``env_agent_steps_per_s``: ``CellSlicingEnv`` alone on a region of ``cells`` cells (all four slices active),
  uniformly random actions, whole episodes of 96 periods after an untimed reset.
- ``rllib_agent_steps_per_s``: the same env inside a PPO algorithm (one shared policy, no remote env runners):
  ``algo.env_runner.sample(...)`` of about ``rllib_agent_steps`` agent steps after an untimed warm-up sample;
  agent steps are counted from the returned episodes.
- ``inference_100k_s``: ``RlPolicy.allocate`` of ``inference_cells`` random observations with that (random-init)
  module in one batched forward pass, median of 3 after a warm-up call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median

import numpy as np

from slicing.config import build_scenario
from slicing.data.features import obs_dim
from slicing.rl.env import CellSlicingEnv, EnvConfig

Log = Callable[[str], None]


def bench_rl(cells: int = 48, episodes: int = 2, rllib_agent_steps: int = 4800, inference_cells: int = 100_000,
             seed: int = 0, log: Log = print) -> dict:
    from slicing.rl.inference import RlPolicy
    from slicing.rl.train import TrainSettings, build_config
    from slicing.runtime.ray_util import ensure_ray

    sites = -(-cells // 3)
    sc = build_scenario({"name": "bench-rl", "seed": seed, "topology": {"sites": sites}, "steps": 960,
                         "initial_slices": [1, 2, 3, 4]})
    env = CellSlicingEnv(EnvConfig(scenario=sc, seed=seed))
    rng = np.random.default_rng(seed)
    steps, elapsed = 0, 0.0
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            acts = {a: rng.uniform(-5, 5, env.n_slices).astype(np.float32) for a in env.agents}
            t0 = time.perf_counter()
            _, _, _, trunc, _ = env.step(acts)
            elapsed += time.perf_counter() - t0
            steps += len(acts)
            done = trunc["__all__"]
    env_rate = steps / elapsed
    log(f"env: {steps} agent steps of {len(env.possible_agents)} cells, {env_rate:.0f} agent steps/s")

    ensure_ray()
    config, _ = build_config(sc, TrainSettings(algo="ppo", groups=1, seed=seed))
    algo = config.build_algo()
    try:
        runner = algo.env_runner
        runner.sample(num_timesteps=len(env.possible_agents) * 8)  # warm-up
        t0 = time.perf_counter()
        eps = runner.sample(num_timesteps=rllib_agent_steps)
        dt = time.perf_counter() - t0
        agent_steps = sum(e.agent_steps() for e in eps)
        rllib_rate = agent_steps / dt
        log(f"RLlib sampling: {agent_steps} agent steps in {dt:.2f} s, {rllib_rate:.0f} agent steps/s")
        policy = RlPolicy({"group_0": algo.get_module("group_0")}, env.n_slices)
    finally:
        algo.stop()
    obs = rng.uniform(0, 1, (inference_cells, obs_dim(env.n_slices))).astype(np.float32)
    mask = np.ones((inference_cells, env.n_slices), dtype=bool)
    policy.allocate(obs[:1000], mask[:1000])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        shares = policy.allocate(obs, mask)
        times.append(time.perf_counter() - t0)
    assert shares.sum(axis=1).max() <= 1 + 1e-9
    log(f"inference: {inference_cells} cells in {median(times):.3f} s (one forward pass)")
    return {"env_agent_steps_per_s": round(env_rate, 1), "rllib_agent_steps_per_s": round(rllib_rate, 1),
            "inference_100k_s": round(median(times), 4)}
