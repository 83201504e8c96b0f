"""Peak-alloc (paper 001, section VI-A2): the static baseline, a brute-force grid search at peak traffic.

For each instance, with constant traffic at its peak x_peak (the paper: 5 users/s, q_thresh 5 Mbit/s, beta_thresh
0.01), every grid allocation r is evaluated on the slice model and the cheapest feasible one is kept::

    E[beta](r) = P(q <= q_thresh) = Phi((q_thresh - mu(x_peak, r)) / sigma(x_peak, r))    (constant traffic)
    r_peak = argmin { eta^T r : r in grid, E[beta](r) <= beta_thresh }

The grid is a product of K 1-D axes (default 0..50 Mbit/s step 1 and 0..4,500 millicores step 50: 51 x 91 = 4,641
points; the experiment uses a finer one for its single instance). ``grid_evaluate`` is the costly part (one model
forward over instances x grid points, in chunks of ``chunk_rows`` rows so memory stays bounded); it is what
``slicing bench microopt`` times against MicroOpt. An instance with no feasible grid point gets the grid's largest
allocation and ``feasible = False``. Pure torch/numpy; no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

QosModel = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

DEFAULT_GRID = (np.arange(0.0, 50.0 + 0.5, 1.0), np.arange(0.0, 4500.0 + 25.0, 50.0))
FINE_GRID = (np.arange(0.0, 50.0 + 0.125, 0.25), np.arange(0.0, 4500.0 + 5.0, 10.0))


@dataclass
class PeakResult:
    r: np.ndarray  # [I, K]
    e_beta: np.ndarray  # [I] at constant peak traffic
    objective: np.ndarray  # [I] eta^T r
    feasible: np.ndarray  # [I]


def grid_points(grid: tuple[np.ndarray, ...]) -> np.ndarray:
    """[G, K] the product of the axes."""
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in grid], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def grid_evaluate(qos: QosModel, peak: np.ndarray, q_thresh: np.ndarray, points: np.ndarray,
                  chunk_rows: int = 2_000_000) -> np.ndarray:
    """[I, G] E[beta] of every instance at every grid point, at constant traffic ``peak`` [I]."""
    n_i, n_g = len(peak), len(points)
    out = np.empty((n_i, n_g), dtype=np.float32)
    r_all = torch.as_tensor(points, dtype=torch.float32)  # [G, K]
    per = max(1, chunk_rows // n_g)  # instances per chunk
    with torch.no_grad():
        for a in range(0, n_i, per):
            b = min(n_i, a + per)
            x = torch.as_tensor(np.repeat(peak[a:b], n_g), dtype=torch.float32)[:, None]  # [rows, 1]
            r = r_all.repeat(b - a, 1)  # [rows, K]
            mu, sigma = qos(x, r)  # [rows, 1]
            qt = torch.as_tensor(np.repeat(q_thresh[a:b], n_g), dtype=torch.float32)[:, None]
            p = torch.special.ndtr((qt - mu) / sigma.clamp_min(1e-9))
            out[a:b] = p.reshape(b - a, n_g).numpy()
    return out


def peak_alloc(qos: QosModel, peak_traffic: np.ndarray | float = 5.0, q_thresh: np.ndarray | float = 5.0,
               beta_thresh: np.ndarray | float = 0.01, eta: np.ndarray | None = None,
               grid: tuple[np.ndarray, ...] = DEFAULT_GRID) -> PeakResult:
    """The cheapest grid allocation meeting beta_thresh at constant peak traffic, per instance (see module doc)."""
    eta = np.array([1 / 50, 1 / 4500]) if eta is None else np.asarray(eta, dtype=float)
    peak = np.atleast_1d(np.asarray(peak_traffic, dtype=np.float64))
    n_i = len(peak)
    q = np.broadcast_to(np.asarray(q_thresh, dtype=np.float64), (n_i,))
    b = np.broadcast_to(np.asarray(beta_thresh, dtype=np.float64), (n_i,))
    if not np.isfinite(peak).all() or (peak < 0).any():
        raise ValueError("peak_traffic: must be finite and >= 0")
    if (q <= 0).any():
        raise ValueError("q_thresh: must be > 0")
    if not ((b > 0) & (b < 1)).all():
        raise ValueError("beta_thresh: must be in (0, 1)")
    points = grid_points(grid)  # [G, K]
    eta = np.asarray(eta, dtype=np.float64)
    if eta.shape != (points.shape[1],):
        raise ValueError(f"eta: expected {points.shape[1]} values (one per grid axis), got {eta.shape}")
    beta = grid_evaluate(qos, peak, q, points)  # [I, G]
    cost = points @ eta  # [G]
    masked = np.where(beta <= b[:, None], cost[None, :], np.inf)  # [I, G]
    best = masked.argmin(axis=1)  # [I]
    feasible = np.isfinite(masked[np.arange(n_i), best])
    best = np.where(feasible, best, len(points) - 1)  # the largest allocation when nothing is feasible
    r = points[best]
    return PeakResult(r=r, e_beta=beta[np.arange(n_i), best].astype(np.float64), objective=r @ eta,
                      feasible=feasible)
