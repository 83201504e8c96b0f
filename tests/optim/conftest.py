"""Fixtures of the allocator tests: a briefly trained monotone estimator and cells with mixed slice masks."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import EstimatorConfig
from slicing.models.qos_estimator import QosEstimator
from slicing.models.qos_training import train_estimator
from tests.optim.helpers import mixed_mask
from tests.synthetic import synth_z


@pytest.fixture(scope="session")
def monotone_model() -> QosEstimator:
    """Trained briefly on r = clip(x * 10 / (users_mean * req), 0, 1): f increases with x, then saturates."""
    rng = np.random.default_rng(1)
    z = synth_z(rng, (20_000,))
    x = rng.uniform(0.0, 1.0, 20_000).astype(np.float32)
    r = np.clip(x * 10.0 / (z[:, :5].mean(axis=1) * z[:, 10]), 0.0, 1.0).astype(np.float32)
    model, report = train_estimator(np.concatenate([x[:, None], z], axis=1), r, EstimatorConfig(epochs=15), seed=3)
    assert report.mae_test < 0.05
    return model


@pytest.fixture(scope="session")
def cells() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    z = synth_z(rng, (120, 4))
    mask = mixed_mask(rng, 120)
    return z, mask
