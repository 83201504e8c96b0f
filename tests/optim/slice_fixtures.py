"""An analytic, differentiable Gaussian slice model for allocator tests (no training needed).

It mirrors the ground-truth simulator's bottleneck (``slicing/sim/e2e.py``): the slice's capacity is the smaller of
the transport goodput 0.94 * bandwidth and the gNB's 0.0135 Mbit/s per millicore above 400 millicores, shared by
max(x, 1) users; sigma = 0.15 mu + 0.2. Monotone: mu rises with both resources and falls with traffic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def analytic_qos(traffic: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """traffic [I, T] users/s, r [I, K=2] (bandwidth Mbps, CPU millicores) -> (mu, sigma), each [I, T] Mbit/s."""
    transport = 0.94 * r[:, 0:1]  # [I, 1]
    compute = 0.0135 * 400.0 * F.softplus((r[:, 1:2] - 400.0) / 400.0)  # [I, 1] smooth max(cpu - 400, 0)
    capacity = -torch.logsumexp(torch.stack([-transport, -compute]), dim=0)  # [I, 1] smooth min
    mu = capacity / traffic.clamp_min(1.0)  # [I, T]
    return mu, 0.15 * mu + 0.2


TINY_SETTINGS = {"epochs": 200, "batch_size": 64, "slots": 6, "users": 4, "traffic": (1.0, 5.0, 2.0),
                 "bandwidth": (5.0, 40.0, 17.5), "cpu": (500.0, 4000.0, 1750.0), "test_points": 6, "log_every": 5}


def tiny_slice_model_file(path):
    """Train a small slice model on a 27-point grid of the ground-truth simulator (about 5 s) and save it."""
    from slicing.config import E2eConfig
    from slicing.models.slice_model import save_slice_model
    from slicing.models.slice_training import SliceModelSettings, train_slice_model

    model, _ = train_slice_model(E2eConfig(seed=0), SliceModelSettings(**TINY_SETTINGS))
    save_slice_model(model, path)
    return path
