"""QoS degradation beta of an end-to-end slice (MicroOpt eq. 1) from a Gaussian slice model, strict and surrogate.

For slice instance i with traffic x_i(t) (users/s) over the slots t of a reconfiguration interval and a per-slot QoS
distribution q_i(t) ~ N(mu_i(t), sigma_i(t)) from the slice model (``slicing/models/slice_model.py``)::

    beta_i   = sum_t x_i(t) 1[q_i(t) <= q_thresh_i] / sum_t x_i(t)                   (strict, eq. 1)
    E[beta_i] = sum_t x_i(t) P(q_i(t) <= q_thresh_i) / sum_t x_i(t)

``strict_e_beta`` estimates E[beta] by Monte Carlo over reparameterised samples q = mu + sigma eps (the paper's outer
loop), or exactly with the normal CDF Phi((q_thresh - mu) / sigma) when no samples are given. ``surrogate_e_beta``
replaces the indicator by the sigmoid s(rho (q_thresh - q)) (the paper's relaxed, differentiable inner loop).
``mode`` selects the ablations of the paper's Fig. 9: ``distribution`` (q = mu + sigma eps), ``mean``
(MicroOpt-0sigma: q = mu) and ``mean_minus_2sigma`` (MicroOpt-2sigma: q = mu - 2 sigma).

Shapes: ``mu``, ``sigma``, ``traffic`` are ``[I, T]``; ``q_thresh`` is a scalar or ``[I]``; ``eps`` is ``[S]``
(shared by every instance and slot, which keeps the estimate smooth in r) or ``[I, T, S]``. Pure torch, no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

QosMode = Literal["distribution", "mean", "mean_minus_2sigma"]
MODES: tuple[str, ...] = ("distribution", "mean", "mean_minus_2sigma")


def _sampled_q(mu: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor | None, mode: str) -> torch.Tensor:
    """[I, T, S] QoS samples (S = 1 for the scalar modes)."""
    if mode == "mean":
        return mu[..., None]
    if mode == "mean_minus_2sigma":
        return (mu - 2.0 * sigma)[..., None]
    if mode != "distribution":
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if eps is None:
        raise ValueError("eps: samples are required in mode 'distribution'")
    e = eps if eps.dim() == 3 else eps.reshape(1, 1, -1)
    return mu[..., None] + sigma[..., None] * e  # [I, T, S]


def _weighted(p: torch.Tensor, traffic: torch.Tensor) -> torch.Tensor:
    """Traffic-weighted mean over slots of ``p[I, T]`` -> [I]."""
    w = traffic.clamp_min(0.0)
    return (w * p).sum(dim=-1) / w.sum(dim=-1).clamp_min(1e-12)


def _thresh(q_thresh: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    q = torch.as_tensor(q_thresh, dtype=like.dtype, device=like.device)
    return q.reshape(-1, 1) if q.dim() == 1 else q  # [I, 1] or scalar


def strict_e_beta(mu: torch.Tensor, sigma: torch.Tensor, traffic: torch.Tensor, q_thresh: torch.Tensor | float,
                  eps: torch.Tensor | None = None, mode: str = "distribution") -> torch.Tensor:
    """E[beta] per instance, ``[I]``, with the strict indicator: Monte Carlo over ``eps`` if given, else exact."""
    qt = _thresh(q_thresh, mu)
    if mode == "distribution" and eps is None:
        p = torch.special.ndtr((qt - mu) / sigma.clamp_min(1e-9))  # [I, T] P(q <= q_thresh)
    else:
        p = (_sampled_q(mu, sigma, eps, mode) <= qt[..., None]).to(mu.dtype).mean(dim=-1)  # [I, T]
    return _weighted(p, traffic)


def surrogate_e_beta(mu: torch.Tensor, sigma: torch.Tensor, traffic: torch.Tensor, q_thresh: torch.Tensor | float,
                     eps: torch.Tensor | None, rho: float, mode: str = "distribution") -> torch.Tensor:
    """Differentiable E[beta] per instance, ``[I]``: the indicator replaced by sigmoid(rho (q_thresh - q))."""
    qt = _thresh(q_thresh, mu)
    p = torch.sigmoid(rho * (qt[..., None] - _sampled_q(mu, sigma, eps, mode))).mean(dim=-1)  # [I, T]
    return _weighted(p, traffic)


def model_e_beta(qos: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                 traffic: np.ndarray, r: np.ndarray, q_thresh: np.ndarray | float) -> np.ndarray:
    """[I] exact E[beta] (float64) of allocations ``r [I, K]`` for ``traffic [I, T]`` on a slice model's ``qos``:
    numpy in and out, no gradient (what every allocator reports, and what the experiments check)."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(traffic), dtype=torch.float32)
        mu, sigma = qos(x, torch.as_tensor(np.asarray(r), dtype=torch.float32))
        q = torch.as_tensor(np.broadcast_to(np.asarray(q_thresh, dtype=np.float64), (len(x),)).copy(),
                            dtype=torch.float32)
        return strict_e_beta(mu, sigma, x, q).double().numpy()
