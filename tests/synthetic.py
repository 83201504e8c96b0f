"""Synthetic per-(cell, slice) features shared by the estimator and optimiser tests."""

from __future__ import annotations

import numpy as np

REQ = np.array([2.0, 1.0, 1.5, 0.5])
DELAY = np.array([100.0, 150.0, 50.0, 30.0])


def synth_z(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Local features [..., 12]: users history, CQI history, throughput and delay requirement."""
    level = rng.uniform(1.0, 15.0, size=shape + (1,))
    users = np.clip(level * rng.lognormal(0.0, 0.1, size=shape + (5,)), 0.1, None)
    cqi = rng.uniform(3.0, 15.0, size=shape + (1,)) + rng.normal(0.0, 0.5, size=shape + (5,))
    kind = rng.integers(0, 4, size=shape)
    return np.concatenate([users, cqi, REQ[kind][..., None], DELAY[kind][..., None]], axis=-1).astype(np.float32)
