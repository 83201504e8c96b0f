"""Training the slice model (``slice_model.py``) on the ground-truth simulator's QoS dataset, as the paper does
(section V-D "Dataset Collection" and VI-A1).

Dataset: the paper's grid, traffic 1-5 users/s step 1, transport bandwidth 5-40 Mbit/s step 5, gNB CPU
500-4,000 millicores step 500 (5 x 8 x 8 = 320 points). At each point the simulator (``slicing/sim/e2e.py``) runs
``slots`` slots of constant traffic with ``users`` sampled users each; one sample = (x, bandwidth, CPU) -> one
user's throughput q in one slot. The grid samples are split at random into training and validation
(``val_fraction``); the test set is gathered the same way at off-grid points only (every coordinate strictly between
two grid values: traffic 1.5-4.5, bandwidth 7.5-37.5, CPU 750-3,750), as the paper's. The paper does not say how
many samples it measured per point; ours is ``slots x users`` = 160 (51,200 grid samples).

Training: Adam, learning rate 1e-3 divided by 10 after ``lr_decay_epoch`` (default half of the 3,000 epochs, the
paper's schedule), Gaussian NLL (eq. 4), minibatches of ``batch_size``. Metrics per split: NLL, and MSE / MAE of mu
against the samples (the paper's Table). Seeded: the same settings give the same model and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field

from slicing.config import E2eConfig, Strict
from slicing.models.slice_model import SliceModel, gaussian_nll
from slicing.sim.e2e import sample_throughput
from slicing.threads import single_torch_thread

PAPER = {"nll": [-1.53, -1.72, -1.67], "mse": [1.58, 1.24, 0.91], "mae": [0.69, 0.62, 0.54]}  # train/val/test
SPLITS = ("train", "val", "test")


class SliceModelSettings(Strict):
    """Dataset and training of the slice model (defaults: the paper's grid and schedule; sample counts ours)."""

    epochs: int = Field(default=3000, ge=1, le=100_000, description="training epochs (paper: 3,000)")
    lr: float = Field(default=1e-3, gt=0, le=1, description="Adam learning rate (paper: 0.001)")
    lr_decay_epoch: int | None = Field(default=None, ge=1, description="epoch after which lr is divided by 10 "
                                                                       "(default: half the epochs, the paper)")
    batch_size: int = Field(default=4096, ge=8, le=1_000_000, description="minibatch size (ours)")
    val_fraction: float = Field(default=0.2, gt=0, lt=1, description="share of the grid samples kept for validation")
    slots: int = Field(default=20, ge=1, le=10_000, description="slots simulated per grid point")
    users: int = Field(default=8, ge=1, le=10_000, description="users sampled per slot")
    traffic: tuple[float, float, float] = Field(default=(1.0, 5.0, 1.0), description="grid start, stop, step")
    bandwidth: tuple[float, float, float] = Field(default=(5.0, 40.0, 5.0), description="grid Mbit/s")
    cpu: tuple[float, float, float] = Field(default=(500.0, 4000.0, 500.0), description="grid millicores")
    test_points: int = Field(default=64, ge=1, le=100_000, description="off-grid test points")
    hidden: int = Field(default=16, ge=1, le=1024, description="layer width (paper: 16)")
    log_every: int = Field(default=10, ge=1, description="epochs between two history entries")
    seed: int = Field(default=0, ge=0, lt=2**31, description="seed of the data, the split and the training")


def _axis(spec: tuple[float, float, float]) -> np.ndarray:
    start, stop, step = spec
    if step <= 0 or stop < start:
        raise ValueError(f"grid axis {spec}: need start <= stop and step > 0")
    return np.arange(start, stop + step / 2, step)


def grid_points(s: SliceModelSettings) -> np.ndarray:
    """[P, 3] every (traffic, bandwidth, CPU) of the grid."""
    axes = np.meshgrid(_axis(s.traffic), _axis(s.bandwidth), _axis(s.cpu), indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def off_grid_points(s: SliceModelSettings, rng: np.random.Generator) -> np.ndarray:
    """[P', 3] points whose every coordinate is a midpoint between two neighbouring grid values (drawn at random
    without replacement among those midpoints)."""
    mids = [(a[:-1] + a[1:]) / 2 for a in (_axis(s.traffic), _axis(s.bandwidth), _axis(s.cpu))]
    axes = np.meshgrid(*mids, indexing="ij")
    all_mid = np.stack([a.ravel() for a in axes], axis=1)
    pick = rng.choice(len(all_mid), size=min(s.test_points, len(all_mid)), replace=False)
    return all_mid[np.sort(pick)]


def build_dataset(e2e: E2eConfig, points: np.ndarray, s: SliceModelSettings, id_offset: int = 0,
                  period: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate every point: (features [P * slots * users, 3], q [same]). Point k is instance ``id_offset + k``."""
    points = np.asarray(points, dtype=np.float64)
    ids = np.arange(len(points)) + id_offset
    traffic = np.repeat(points[:, 0:1], s.slots, axis=1)  # [P, T]
    q = sample_throughput(e2e, ids, traffic, points[:, 1], points[:, 2], 1.0, period=period, users=s.users)
    feats = np.repeat(points, s.slots * s.users, axis=0)  # [P * T * U, 3]
    return feats.astype(np.float32), q.reshape(-1).astype(np.float32)


@dataclass
class SliceModelReport:
    """Metrics per split (``metrics[split] = {nll, mse, mae}``), the training history, sample counts, the paper's."""

    metrics: dict[str, dict[str, float]]
    history: dict[str, list[float]]
    samples: dict[str, int]
    wall_s: float
    paper: dict[str, list[float]] = field(default_factory=lambda: dict(PAPER))

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "history": self.history, "samples": self.samples, "wall_s": self.wall_s,
                "paper": self.paper}


def evaluate(model: SliceModel, feats: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """NLL, MSE and MAE of mu on a dataset (eval mode, no gradient)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        mu, sigma = model(torch.from_numpy(feats))
        target = torch.from_numpy(q)
        out = {"nll": float(gaussian_nll(mu, sigma, target)), "mse": float(((mu - target) ** 2).mean()),
               "mae": float((mu - target).abs().mean())}
    model.train(was)
    return out


def train_slice_model(e2e: E2eConfig, s: SliceModelSettings,
                      progress: Callable[[int, dict], None] | None = None) -> tuple[SliceModel, SliceModelReport]:
    """Build the datasets, train, report (see module docstring). The model comes back in eval mode."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(s.seed)
    grid = grid_points(s)
    feats, q = build_dataset(e2e, grid, s)
    order = rng.permutation(len(q))
    n_val = round(len(q) * s.val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    test_feats, test_q = build_dataset(e2e, off_grid_points(s, rng), s, id_offset=len(grid))
    data = {"train": (feats[train_idx], q[train_idx]), "val": (feats[val_idx], q[val_idx]),
            "test": (test_feats, test_q)}
    traffic = _axis(s.traffic)
    with single_torch_thread():
        torch.manual_seed(s.seed)
        model = SliceModel(2, s.hidden, float(traffic.min()), float(traffic.max()))
        opt = torch.optim.Adam(model.parameters(), lr=s.lr)
        decay = s.lr_decay_epoch or max(1, s.epochs // 2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=decay, gamma=0.1)
        x_train, y_train = (torch.from_numpy(a) for a in data["train"])
        gen = torch.Generator().manual_seed(s.seed)
        history: dict[str, list[float]] = {"epoch": [], "train_nll": [], "val_nll": [], "train_mse": [],
                                           "val_mse": []}
        for epoch in range(1, s.epochs + 1):
            model.train()
            perm = torch.randperm(len(y_train), generator=gen)
            for start in range(0, len(perm), s.batch_size):
                idx = perm[start:start + s.batch_size]
                if len(idx) < 2:
                    continue  # BatchNorm needs two rows
                mu, sigma = model(x_train[idx])
                loss = gaussian_nll(mu, sigma, y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            if epoch % s.log_every == 0 or epoch == s.epochs:
                tr, va = evaluate(model, *data["train"]), evaluate(model, *data["val"])
                history["epoch"].append(epoch)
                for split, m in (("train", tr), ("val", va)):
                    history[f"{split}_nll"].append(round(m["nll"], 5))
                    history[f"{split}_mse"].append(round(m["mse"], 5))
                if progress:
                    progress(epoch, {"train": tr, "val": va})
        model.eval()
        metrics = {split: {k: round(v, 4) for k, v in evaluate(model, *data[split]).items()} for split in SPLITS}
    report = SliceModelReport(metrics=metrics, history=history, samples={k: len(v[1]) for k, v in data.items()},
                              wall_s=round(time.perf_counter() - t0, 1))
    return model, report


def cpu_bottleneck_curve(model: SliceModel, traffic: float, bandwidths: np.ndarray, cpus: np.ndarray) -> np.ndarray:
    """[B, C] predicted mu (Mbit/s) at ``traffic`` users/s for every bandwidth x CPU (the paper's Fig. 4c)."""
    bw, cpu = np.meshgrid(np.asarray(bandwidths, dtype=np.float32), np.asarray(cpus, dtype=np.float32),
                          indexing="ij")
    feats = np.stack([np.full(bw.size, traffic, dtype=np.float32), bw.ravel(), cpu.ravel()], axis=1)
    model.eval()
    with torch.no_grad():
        mu, _ = model(torch.from_numpy(feats))
    return mu.numpy().reshape(bw.shape)
