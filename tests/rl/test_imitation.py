"""Imitation learning with RLlib (slicing/rl/imitation.py): baseline rollouts in RLlib's offline schema, RLlib BC
on them, and the warm start of PPO and SAC. The recording and BC fixtures are in tests/rl/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.data.features import ACTION_LIMIT, action_to_shares
from slicing.rl.imitation import COLUMNS
from slicing.rl.settings import ImitationSettings
from tests.rl.helpers import IMITATION_TINY as TINY


def _bc_module(scenario, state: dict | None):
    """A standalone module of BC's spec, loaded with ``state`` (a fresh seeded init if None)."""
    import torch

    from slicing.rl.imitation import bc_module_spec

    torch.manual_seed(0)
    module = bc_module_spec(scenario, TINY).build()
    if state is not None:
        module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    return module


def _mean_action(module, obs: np.ndarray) -> np.ndarray:
    import torch
    from ray.rllib.core.columns import Columns

    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
    return out[Columns.ACTION_DIST_INPUTS].numpy()[:, : obs.shape[1] // 5]  # [B, S] Gaussian means


def test_recording_has_rllib_offline_schema_and_baseline_actions(scenario, recording):
    import pyarrow.parquet as pq
    from ray.rllib.offline.offline_prelearner import SCHEMA

    table = pq.read_table(recording["path"])
    assert tuple(table.column_names) == COLUMNS
    assert set(COLUMNS) <= set(SCHEMA.values())  # nothing would be read as an extra model output
    n_slices = len(scenario.slices)
    assert table.num_rows == recording["rows"] == TINY.days * TINY.episode_len * TINY.cells
    assert table.column("eps_id").to_pandas().nunique() == TINY.days * TINY.cells
    obs = np.stack(table.column("obs").to_numpy(zero_copy_only=False))  # [rows, 5S]
    act = np.stack(table.column("actions").to_numpy(zero_copy_only=False))  # [rows, S]
    assert obs.shape[1] == 5 * n_slices and act.shape[1] == n_slices
    assert np.abs(act).max() <= 1.0 and np.isfinite(act).all()
    trunc = table.column("truncateds").to_numpy()
    assert trunc.sum() == TINY.days * TINY.cells and not table.column("terminateds").to_numpy().any()
    # the env's unsquashed action (ACTION_LIMIT * a) gives back the traffic-proportional shares
    from slicing.rl.env import CellSlicingEnv
    from slicing.rl.train import region_cells

    env = CellSlicingEnv({"scenario": scenario, "cell_ids": region_cells(scenario, region=TINY.cells).tolist(),
                          "episode_len": TINY.episode_len})
    env.reset(seed=TINY.seed * 100_003)  # the first recorded episode
    mask = obs[: TINY.cells, 4 * n_slices:] > 0.5  # rows t=0 of each cell: the observation's mask block
    np.testing.assert_allclose(action_to_shares(ACTION_LIMIT * act[: TINY.cells], mask), env.baseline_shares(),
                               atol=2e-3)
    assert 0 < recording["baseline_reward"] <= 1


def test_rllib_bc_clones_the_recorded_actions(scenario, recording, bc):
    import pyarrow.parquet as pq

    state, losses = bc
    assert len(losses) == TINY.bc_iterations and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0  # the negative log-likelihood falls
    table = pq.read_table(recording["path"])
    obs = np.stack(table.column("obs").to_numpy(zero_copy_only=False))
    act = np.stack(table.column("actions").to_numpy(zero_copy_only=False))
    err_bc = np.abs(_mean_action(_bc_module(scenario, state), obs) - act).mean()
    err_init = np.abs(_mean_action(_bc_module(scenario, None), obs) - act).mean()
    assert err_bc < 0.5 * err_init
    # rolled out on the recorded days, the clone allocates close to the baseline (total-variation gap of shares)
    from slicing.rl.imitation import evaluate_clone

    fresh = {k: v.numpy() for k, v in _bc_module(scenario, None).state_dict().items()}
    clone, untrained = evaluate_clone(scenario, TINY, state), evaluate_clone(scenario, TINY, fresh)
    assert clone["clone_share_gap"] < 0.75 * untrained["clone_share_gap"]
    assert 0 <= clone["clone_reward"] <= 1


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_warm_start_copies_bc_policy_into_learner_and_env_runner(scenario, bc, algo):
    import torch
    from ray.rllib.core.columns import Columns

    from slicing.rl.imitation import module_state, warm_start
    from slicing.rl.train import build_config, iteration_reward, sampled_reward_callback

    state, _ = bc
    s = ImitationSettings.model_validate(TINY.model_dump() | {"algo": algo})
    config, _ = build_config(scenario, s.train_settings(TINY.cells))
    algo_obj = config.callbacks(sampled_reward_callback()).build_algo()
    try:
        before = module_state(algo_obj, "group_0")
        written = warm_start(algo_obj, algo, state, "group_0")
        after = module_state(algo_obj, "group_0")
        pi_src = [k for k in state if k.startswith("pi.net")]
        assert pi_src and all(k in written for k in pi_src)
        for src in state:
            dst = src if algo == "ppo" else src.replace("encoder.encoder.", "pi_encoder.")
            if src.startswith(("encoder.", "pi.")):
                np.testing.assert_array_equal(after[dst], state[src])
        untouched = [k for k in after if k not in written]  # value / Q branches keep their own init
        assert untouched and all(np.array_equal(after[k], before[k]) for k in untouched)
        # the env runner's (inference-only) module acts with BC's policy
        obs = np.random.default_rng(0).uniform(0, 1, (8, 5 * len(scenario.slices))).astype(np.float32)
        with torch.no_grad():
            runner_out = algo_obj.get_module("group_0").forward_inference({Columns.OBS: torch.from_numpy(obs)})
        bc_out = _bc_module(scenario, state).forward_inference({Columns.OBS: torch.from_numpy(obs)})
        np.testing.assert_allclose(runner_out[Columns.ACTION_DIST_INPUTS].numpy(),
                                   bc_out[Columns.ACTION_DIST_INPUTS].detach().numpy(), rtol=1e-5, atol=1e-6)
        if algo == "ppo":  # one iteration runs with the copied weights (SAC: the copy alone, to save time)
            reward = iteration_reward(algo_obj.train())
            assert reward is not None and 0 <= reward <= 1
    finally:
        algo_obj.stop()
