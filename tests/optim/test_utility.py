"""The utility function: numpy form on values, estimator form on shares, and their agreement with the callers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.models.qos_estimator import QosEstimator, tabulate
from slicing.optim.oracle import grid_values
from slicing.optim.utility import estimated_utility, estimated_utility_tensor
from slicing.sim.utility import log1p_terms, utility


def test_estimated_utility_is_the_sum_of_log1p_f_over_active_slices(monotone_model: QosEstimator,
                                                                   cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    rng = np.random.default_rng(5)
    shares = np.where(mask, rng.dirichlet(np.ones(4), len(z)), 0.0)  # [N, S]
    u = estimated_utility(monotone_model, z, mask, shares)
    assert u.dtype == np.float64 and u.shape == (len(z),)
    feats = np.concatenate([shares[..., None], z], axis=2).astype(np.float32)  # [N, S, 13]
    with torch.no_grad():
        f = monotone_model(torch.from_numpy(feats.reshape(-1, 13))).numpy().reshape(mask.shape)
    np.testing.assert_allclose(u, utility(f, mask), rtol=1e-6)
    # the numpy wrapper is the tensor form, bit for bit
    ut = estimated_utility_tensor(monotone_model, torch.from_numpy(z), torch.from_numpy(mask),
                                  torch.from_numpy(shares).float())
    np.testing.assert_array_equal(u, ut.numpy())
    assert np.all(u[~mask.any(axis=1)] == 0)
    with pytest.raises(ValueError, match="do not match"):
        estimated_utility(monotone_model, z, mask[:-1], shares[:-1])


def test_grid_values_are_the_terms_at_the_grid(monotone_model: QosEstimator,
                                               cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    f = tabulate(monotone_model, z, np.linspace(0, 1, 11)).astype(np.float64)
    np.testing.assert_array_equal(grid_values(monotone_model, z, mask, points=11), log1p_terms(f, mask))
