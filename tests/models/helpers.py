"""Helpers of the model tests (not a test module): a learnable synthetic dataset and random estimators; a small
VAE config and Gaussian clusters (the VAE and the transfer ranking tests)."""

from __future__ import annotations

import numpy as np
import torch

from slicing.models.qos_estimator import IN_DIM, QosEstimator, build_estimator
from slicing.models.vae import VaeConfig
from tests.synthetic import synth_z


def synth_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """r = clip(x * 10 / (users_mean * req), 0, 1): learnable, monotone in x."""
    rng = np.random.default_rng(seed)
    z = synth_z(rng, (n,))
    x = rng.uniform(0.0, 1.0, n).astype(np.float32)
    r = np.clip(x * 10.0 / (z[:, :5].mean(axis=1) * z[:, 10]), 0.0, 1.0)
    return np.concatenate([x[:, None], z], axis=1).astype(np.float32), r.astype(np.float32)


def random_model(seed: int = 0, hidden: tuple[int, ...] = (36, 24, 16, 16)) -> QosEstimator:
    model = build_estimator(hidden, seed)
    g = torch.Generator().manual_seed(seed + 100)
    mean = torch.rand(IN_DIM, generator=g) * 5.0
    std = torch.rand(IN_DIM, generator=g) * 3.0 + 0.5
    model.set_normalisation(mean, std)  # deliberately also moves x's mean/std: tabulate must honour them
    return model.eval()


SMALL_VAE = VaeConfig(hidden=(32, 16), latent_dim=4, epochs=30, batch_size=128)


def clusters(n: int, centres: dict[str, float], seed: int, dim: int = 21) -> dict[str, np.ndarray]:
    """Gaussian clusters along one direction: agent -> [n, dim] samples centred at c * u, noise std 0.3."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=dim)
    u /= np.linalg.norm(u)
    return {a: (c * u + 0.3 * rng.normal(size=(n, dim))).astype(np.float32) for a, c in centres.items()}
