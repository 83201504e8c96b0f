"""`slicing bench rl` (slicing/bench/rl.py): a tiny run of its three measurements on the session's Ray."""

from __future__ import annotations


def test_bench_rl_small(ray_session):
    from slicing.bench.rl import bench_rl

    logs: list[str] = []
    res = bench_rl(cells=6, episodes=1, rllib_agent_steps=96, inference_cells=2000, log=logs.append)
    assert set(res) == {"env_agent_steps_per_s", "rllib_agent_steps_per_s", "inference_100k_s"}
    assert all(v > 0 for v in res.values())
    assert logs[0].startswith("env: 576 agent steps of 6 cells")  # one episode of 96 periods x 6 agents
    assert logs[-1].startswith("inference: 2000 cells in ")
