"""Helpers of the allocator tests (not a test module)."""

from __future__ import annotations

import numpy as np
import torch

from slicing.models.qos_estimator import QosEstimator
from slicing.optim.utility import estimated_utility_tensor


def mixed_mask(rng: np.random.Generator, n: int, s: int = 4) -> np.ndarray:
    """Cells with 1..s active slices (every count present), in random positions."""
    counts = np.resize(np.arange(1, s + 1), n)
    keys = rng.random((n, s))
    return np.argsort(keys, axis=1) < counts[:, None]


def exact_util(model: QosEstimator, z: np.ndarray, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The estimator form of the utility on numpy arrays (as IDLA computes it)."""
    zt, mt, xt = torch.from_numpy(z), torch.from_numpy(mask), torch.from_numpy(x).float()
    return estimated_utility_tensor(model, zt, mt, xt).numpy()


def assert_feasible(x: np.ndarray, mask: np.ndarray) -> None:
    assert x.dtype == np.float64
    assert np.all(x >= 0)
    assert np.all(x[~mask] == 0)
    assert np.all(x.sum(axis=1) <= 1.0)
