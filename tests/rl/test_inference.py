"""Population inference (slicing/rl/inference.py): a checkpoint's modules applied to many cells in batched passes."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.data.features import ACTION_LIMIT, obs_dim


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


def test_rows_go_to_contiguous_groups_unless_given(ppo_checkpoint):
    """Without ``groups`` the first half of the rows is module group_0's and the second group_1's; an explicit
    per-row module index overrides that, and the two modules act differently."""
    from slicing.rl.inference import RlPolicy

    policy = RlPolicy.from_checkpoint(ppo_checkpoint[1])
    obs = np.random.default_rng(1).uniform(0, 2, (10, obs_dim(4))).astype(np.float32)
    a = policy.actions(obs)  # [10, 4]
    assert a.shape == (10, 4) and (np.abs(a) <= ACTION_LIMIT).all()
    np.testing.assert_array_equal(policy.actions(obs[:5], groups=np.zeros(5)), a[:5])
    np.testing.assert_array_equal(policy.actions(obs[5:], groups=np.ones(5)), a[5:])
    assert not np.allclose(policy.actions(obs, groups=np.zeros(10)), policy.actions(obs, groups=np.ones(10)))


def test_shape_and_checkpoint_errors_name_the_problem(ppo_checkpoint, tmp_path):
    from slicing.rl.inference import RlPolicy

    policy = RlPolicy.from_checkpoint(ppo_checkpoint[1])
    obs = np.zeros((3, obs_dim(4)), np.float32)
    with pytest.raises(ValueError, match=r"obs: expected \[N, 20\], got \[3, 19\]"):
        policy.allocate(obs[:, :-1], np.ones((3, 4), bool))
    with pytest.raises(ValueError, match=r"mask: expected \[3, 4\], got \[3, 3\]"):
        policy.allocate(obs, np.ones((3, 3), bool))
    with pytest.raises(FileNotFoundError, match="not an RLlib algorithm checkpoint"):
        RlPolicy.from_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="no RLModules"):
        RlPolicy({}, 4)
