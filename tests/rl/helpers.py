"""Helpers of the RLlib tests (not a test module): tiny budgets shared by the fixtures and the tests."""

from __future__ import annotations

from slicing.rl.settings import ImitationSettings

# `slicing train-rl` on 6 cells of scenarios/idla.yaml with 16-period episodes
TRAIN_RL_TINY = ["--scenario", "scenarios/idla.yaml", "--cells", "6", "--episode-len", "16"]

# the imitation experiment on 3 cells, two recorded 16-period days, a small BC and one online iteration
IMITATION_TINY = ImitationSettings(cells=3, days=2, episode_len=16, bc_iterations=40, bc_batch=64, bc_lr=1e-2,
                                   iterations=1, early=1, train_batch=48, hidden=(16, 16))
