"""The multi-cell twin (slicing/models/cell_twin.py): it learns a known system of several cells better than the
naive predictors, carries the slice mask over, keeps its held-out split, and refuses data of the wrong shape."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.models.cell_twin import CellTransitions, CellTwin, mask_block

S = 2  # slices: observation 5 S = 10 features


def known_cells(cells: int = 6, periods: int = 240, seed: int = 0) -> CellTransitions:
    """Per cell: o' = 0.5 o + shares (tiled over the first 4 blocks) + noise, mask block constant 1;
    reward = 0.8 * shares[0] + 0.1 * o[0]; shares drawn at random each period."""
    rng = np.random.default_rng(seed)
    d = 5 * S
    m = mask_block(S)
    obs = np.zeros((cells, periods, d))
    nxt = np.zeros_like(obs)
    shares = rng.dirichlet(np.ones(S), (cells, periods))
    x = np.ones((cells, d))
    for t in range(periods):
        obs[:, t] = x
        x = 0.5 * x + np.tile(shares[:, t], 5) + rng.normal(0, 0.01, (cells, d))
        x[:, m] = 1.0
        nxt[:, t] = x
    reward = 0.8 * shares[..., 0] + 0.1 * obs[..., 0]
    return CellTransitions(obs, shares, reward, nxt)


def test_cell_twin_learns_a_known_system_better_than_the_naive_predictors():
    d = known_cells()
    twin = CellTwin(S, hidden=32, seq_len=8, seed=0, lr=3e-3)
    fid = twin.fit(d, updates=800)
    assert fid["state_rmse_1"] < 0.3 * fid["persistence_rmse_1"], fid
    assert fid["reward_mae"] < 0.3 * fid["mean_predictor_reward_mae"], fid
    assert fid["state_rmse_5"] < fid["persistence_rmse_1"], fid
    assert fid["transitions"] == 6 * 240 and fid["held_out"] == 6 * (240 - 192)
    p = twin.payload()
    assert p.start_states.shape == (240, 6, 10)  # every real period's observations of all cells
    assert p.reward_range == (float(d.reward.min()), float(d.reward.max()))
    assert p.resid_std.shape == (10,) and np.all(p.resid_std >= 1e-3)
    # the payload rebuilds the same network
    net = p.net()
    for k, v in twin.net.state_dict().items():
        assert np.allclose(net.state_dict()[k].numpy(), v.numpy())


def test_recalibration_continues_from_the_current_weights():
    d = known_cells(periods=120)
    twin = CellTwin(S, hidden=16, seq_len=4, seed=1, lr=3e-3)
    first = twin.fit(d, updates=50)
    second = twin.fit(d, updates=300)
    assert second["state_rmse_1"] < first["state_rmse_1"]


def test_wrong_shapes_and_too_few_periods_are_refused():
    d = known_cells(periods=40)
    with pytest.raises(ValueError, match=r"transitions: expected obs \[C, T, 15\]"):
        CellTwin(3).fit(d)
    short = CellTransitions(d.obs[:, :10], d.shares[:, :10], d.reward[:, :10], d.next_obs[:, :10])
    with pytest.raises(ValueError, match="at least 16 periods, got 10"):
        CellTwin(S, seq_len=8).fit(short)
