"""A digital twin of the multi-cell network as the ``drl`` scheme's cell agents see it (issue 11, beyond paper 004).

The same two models as paper 004's twin (``slicing/models/twin.py``, whose ``TwinNet`` this reuses), per cell and
shared by all cells:

- **State model** (o_t, x_t) -> o_{t+1}: an LSTM over a cell's sequence of observations o (``CellSlicingEnv``'s
  5 S features: throughput / requirement, PRB utilisation, users, neighbours' load, slice mask) and applied shares
  x (S). It predicts o + delta. The slice-mask block is not predicted: the twin carries the current mask over (the
  slices a cell serves change only by schedule, which the twin is not asked to guess).
- **Reward model** (o_t, x_t) -> r_t: an MLP predicting the env's reward (``drl.reward``: min over slices of r, by
  default), clipped in the twin env to the range seen in the data.

Data (``CellTransitions``): [C, T, ...] arrays, one time series per cell, in period order. Recalibration draws
``updates`` minibatches of ``seq_len``-period windows at random (cell, start) from the first 80 % of the periods
and continues from the current weights; the last 20 % are held out for the fidelity figures: one-step and k-step
(autoregressive) observation RMSE next to persistence's (o_{t+1} = o_t), reward MAE next to predicting the mean.
The twin env adds Gaussian noise of the held-out residual size per feature.

Torch only; the env that runs it is ``slicing/rl/cell_twin.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from slicing.models.twin import TwinNet

N_BLOCKS = 5  # observation blocks (slicing/data/features.py); the last is the slice mask


@dataclass
class CellTransitions:
    """Real transitions of C cells over T consecutive periods."""

    obs: np.ndarray  # [C, T, D] observation before the period
    shares: np.ndarray  # [C, T, S] shares applied in the period
    reward: np.ndarray  # [C, T]
    next_obs: np.ndarray  # [C, T, D] observation after it

    @property
    def periods(self) -> int:
        return self.obs.shape[1]

    def __len__(self) -> int:
        return int(self.obs.shape[0] * self.obs.shape[1])


@dataclass
class CellTwinPayload:
    """What the twin env needs: weights, dimensions, noise scale, start states and the reward range."""

    state_dict: dict[str, np.ndarray]
    hidden: int
    obs_dim: int
    n_slices: int
    resid_std: np.ndarray  # [D]
    start_states: np.ndarray  # [T, C, D]: every real period's observations of all cells
    reward_range: tuple[float, float]

    def net(self) -> TwinNet:
        net = TwinNet(self.hidden, self.obs_dim, self.n_slices)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in self.state_dict.items()})
        net.eval()
        return net


def mask_block(n_slices: int) -> slice:
    """Columns of the slice mask in an observation."""
    return slice((N_BLOCKS - 1) * n_slices, N_BLOCKS * n_slices)


class CellTwin:
    """The multi-cell twin and its recalibration (module doc)."""

    def __init__(self, n_slices: int, hidden: int = 64, lr: float = 1e-3, seq_len: int = 8, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.n_slices = n_slices
        self.obs_dim = N_BLOCKS * n_slices
        self.net = TwinNet(hidden, self.obs_dim, n_slices)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.seq_len = seq_len
        self.rng = np.random.default_rng(seed)
        self.resid_std = np.full(self.obs_dim, 0.05)
        self.start_states = np.zeros((1, 1, self.obs_dim))
        self.reward_range = (0.0, 1.0)

    def _check(self, d: CellTransitions) -> None:
        c, t, dim = d.obs.shape
        if dim != self.obs_dim or d.shares.shape != (c, t, self.n_slices) or d.next_obs.shape != d.obs.shape \
                or d.reward.shape != (c, t):
            raise ValueError(f"transitions: expected obs [C, T, {self.obs_dim}], shares [C, T, {self.n_slices}], "
                             f"reward [C, T]; got {d.obs.shape}, {d.shares.shape}, {d.reward.shape}")
        if t < 2 * self.seq_len:
            raise ValueError(f"transitions: the twin needs at least {2 * self.seq_len} periods, got {t}")

    def fit(self, d: CellTransitions, updates: int = 300, batch: int = 64, k: int = 5) -> dict[str, float]:
        """Recalibrate on ``d`` (all periods so far) with ``updates`` minibatches; returns the held-out fidelity."""
        self._check(d)
        c, t, _ = d.obs.shape
        L = self.seq_len
        split = max(L, int(t * 0.8))
        tens = {k_: torch.as_tensor(getattr(d, k_), dtype=torch.float32)
                for k_ in ("obs", "shares", "reward", "next_obs")}
        self.net.train()
        for _ in range(updates):
            cells = torch.as_tensor(self.rng.integers(0, c, batch))
            starts = self.rng.integers(0, split - L + 1, batch)
            rows = torch.as_tensor(starts[:, None] + np.arange(L)[None, :])  # [B, L]
            s, a = tens["obs"][cells[:, None], rows], tens["shares"][cells[:, None], rows]
            pred, _ = self.net.next_state(s, a)
            loss = ((pred - tens["next_obs"][cells[:, None], rows]) ** 2).mean() \
                + ((self.net.utility(s, a) - tens["reward"][cells[:, None], rows]) ** 2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.start_states = np.swapaxes(d.obs, 0, 1).copy()  # [T, C, D]
        self.reward_range = (float(d.reward.min()), float(d.reward.max()))
        return self.fidelity(d, split, k)

    @torch.no_grad()
    def fidelity(self, d: CellTransitions, split: int, k: int = 5) -> dict[str, float]:
        """Held-out (periods >= split) errors, next to the naive predictors'."""
        self.net.eval()
        c, t, _ = d.obs.shape
        m = mask_block(self.n_slices)
        s = torch.as_tensor(d.obs, dtype=torch.float32)
        a = torch.as_tensor(d.shares, dtype=torch.float32)
        pred, _ = self.net.next_state(s, a)  # teacher-forced over each cell's whole sequence
        pred = pred.numpy()
        pred[..., m] = d.obs[..., m]
        err = (pred - d.next_obs)[:, split:]
        self.resid_std = np.maximum(err.reshape(-1, self.obs_dim).std(axis=0), 1e-3)
        r_hat = self.net.utility(s, a).numpy()[:, split:]
        train_mean = float(d.reward[:, :split].mean())
        # k-step: from held-out starts, roll on the twin's own predictions (all cells at once)
        starts = np.arange(split, t - k + 1, k)
        ks = []
        for start in starts:
            st = s[:, start:start + 1]
            hc = None
            for j in range(k):
                nxt, hc = self.net.next_state(st, a[:, start + j:start + j + 1], hc)
                nxt[..., m] = st[..., m]
                st = nxt
            ks.append(float(np.sqrt(((st[:, 0].numpy() - d.next_obs[:, start + k - 1]) ** 2).mean())))
        return {"state_rmse_1": float(np.sqrt((err ** 2).mean())),
                "persistence_rmse_1": float(np.sqrt(((d.obs - d.next_obs)[:, split:] ** 2).mean())),
                f"state_rmse_{k}": float(np.mean(ks)) if ks else float("nan"),
                "reward_mae": float(np.abs(r_hat - d.reward[:, split:]).mean()),
                "mean_predictor_reward_mae": float(np.abs(train_mean - d.reward[:, split:]).mean()),
                "transitions": len(d), "held_out": int(c * (t - split))}

    def payload(self) -> CellTwinPayload:
        sd = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        return CellTwinPayload(sd, self.net.hidden, self.obs_dim, self.n_slices, self.resid_std.copy(),
                               self.start_states.copy(), self.reward_range)
