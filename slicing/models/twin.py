"""The digital twin of paper 004: an LSTM state-transition model and a DNN reward model, fitted on real transitions.

- **State model** P(s_t, a_t) -> s_{t+1}: an LSTM over the sequence of (state, action) pairs (the action as the three
  bandwidth shares), a linear head to the next state. It is trained on windows of ``seq_len`` consecutive real
  transitions (MSE, eq. 7) and run autoregressively in the twin env, its hidden state carried along the episode.
- **Reward model** R(s_t, a_t): an MLP. It predicts the *utility* U_t (eq. 5) rather than the shaped reward r_t:
  r_t depends on the rising threshold gamma^t (eq. 6), i.e. on the training clock, not only on (s_t, a_t), so the
  twin env applies eq. 6 to the predicted U with the real env's current threshold. The reported fidelity includes
  the reward error after that step.
- **Recalibration** continues training from the current weights on all transitions collected so far (Algorithm 1,
  line 4, every round): a fixed number of minibatches of windows drawn at random, so a round costs the same however
  much data there is. The last 20 % (in time) are held out for the fidelity figures: one-step state RMSE, k-step
  (autoregressive) state RMSE, utility MAE and reward MAE, all in the observation's scaled units.
- The twin is stochastic like the real env: the state head's held-out residual standard deviation per slice is kept
  and the twin env adds Gaussian noise of that size (the paper calls its LSTM a generative model with a random term).

Torch only (no Ray): the twin env (``slicing/rl/bs_env.py``) rebuilds it from ``TwinPayload``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slicing.sim.basestation import shaped_reward

STATE_DIM = 3
ACTION_DIM = 3


class TwinFileError(ValueError):
    """A twin file that cannot be used: unreadable, not a twin, or weights of the wrong shape."""


class TwinNet(nn.Module):
    """LSTM state model + MLP utility model. The dimensions default to the base station's (3 slices); the
    multi-cell twin (``slicing/models/cell_twin.py``) uses a cell's observation and shares, and its reward head
    predicts the env's reward directly."""

    def __init__(self, hidden: int = 64, state_dim: int = STATE_DIM, action_dim: int = ACTION_DIM) -> None:
        super().__init__()
        self.hidden = hidden
        self.lstm = nn.LSTM(state_dim + action_dim, hidden, batch_first=True)
        self.state_head = nn.Linear(hidden, state_dim)
        self.reward = nn.Sequential(nn.Linear(state_dim + action_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def next_state(self, s: torch.Tensor, a: torch.Tensor, hc=None):
        """s: [B, T, state_dim], a: [B, T, action_dim] -> (s_next [B, T, state_dim], (h, c)). Predicts s + delta."""
        out, hc = self.lstm(torch.cat([s, a], dim=-1), hc)
        return s + self.state_head(out), hc

    def utility(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.reward(torch.cat([s, a], dim=-1)).squeeze(-1)


@dataclass
class Transitions:
    """Real transitions in time order: state, action shares, utility, reward, threshold, next state."""

    s: np.ndarray  # [N, 3] scaled observations
    a: np.ndarray  # [N, 3] bandwidth shares
    u: np.ndarray  # [N]
    r: np.ndarray  # [N]
    gamma: np.ndarray  # [N] threshold in force
    s_next: np.ndarray  # [N, 3]
    action: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [N] discrete index

    def __len__(self) -> int:
        return len(self.s)

    def extend(self, other: Transitions) -> Transitions:
        return Transitions(*(np.concatenate([getattr(self, k), getattr(other, k)]) for k in
                             ("s", "a", "u", "r", "gamma", "s_next", "action")))

    @classmethod
    def empty(cls) -> Transitions:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 3)),
                   np.zeros(0, dtype=np.int64))


@dataclass
class TwinPayload:
    """What the twin env needs: weights, noise scale, start states and the reward shaping."""

    state_dict: dict[str, np.ndarray]
    hidden: int
    resid_std: np.ndarray  # [3]
    start_states: np.ndarray  # [K, 3]


class DigitalTwin:
    """The twin and its recalibration."""

    def __init__(self, hidden: int = 64, lr: float = 1e-3, seq_len: int = 8, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.net = TwinNet(hidden)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.seq_len = seq_len
        self.rng = np.random.default_rng(seed)
        self.resid_std = np.full(STATE_DIM, 0.05)
        self.start_states = np.ones((1, STATE_DIM))

    # ------------------------------------------------------------------ fitting
    def _windows(self, d: Transitions, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Windows of seq_len consecutive transitions starting at ``idx``."""
        L = self.seq_len
        rows = idx[:, None] + np.arange(L)[None, :]
        f = lambda x: torch.as_tensor(x[rows], dtype=torch.float32)  # noqa: E731
        return f(d.s), f(d.a), f(d.s_next), f(d.u)

    def fit(self, d: Transitions, gamma_max: float, updates: int = 300, batch: int = 64,
            k: int = 5) -> dict[str, float]:
        """Recalibrate with ``updates`` minibatches of windows drawn from all of ``d`` but its held-out last 20 %
        (a constant cost per round however much data there is); returns the held-out fidelity (module doc)."""
        n = len(d)
        L = self.seq_len
        if n < 2 * L:
            raise ValueError(f"transitions: the twin needs at least {2 * L} of them, got {n}")
        split = max(L, int(n * 0.8))
        train_starts = np.arange(0, split - L + 1)
        self.net.train()
        for _ in range(updates):
            s, a, s1, u = self._windows(d, self.rng.choice(train_starts, min(batch, len(train_starts))))
            pred, _ = self.net.next_state(s, a)
            loss = ((pred - s1) ** 2).mean() + ((self.net.utility(s, a) - u) ** 2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.start_states = d.s.copy()
        return self.fidelity(d, split, gamma_max, k)

    @torch.no_grad()
    def fidelity(self, d: Transitions, split: int, gamma_max: float, k: int = 5) -> dict[str, float]:
        """Held-out (index >= split, or the last 20 % when split leaves none) state and reward errors."""
        self.net.eval()
        n = len(d)
        test = np.arange(min(split, n - self.seq_len), n)
        s = torch.as_tensor(d.s, dtype=torch.float32)[None]
        a = torch.as_tensor(d.a, dtype=torch.float32)[None]
        pred, _ = self.net.next_state(s, a)  # teacher-forced over the whole sequence (warm hidden state)
        err = (pred[0].numpy() - d.s_next)[test]
        self.resid_std = np.maximum(err.std(axis=0), 1e-3)
        u_hat = self.net.utility(s, a)[0].numpy()[test]
        r_hat = shaped_reward(u_hat, d.gamma[test], gamma_max)
        # k-step: from each held-out start, roll the state model on its own predictions for k steps
        ks = []
        for start in test[: max(1, len(test) - k)][:: max(1, k)]:
            if start + k > n:
                break
            st = torch.as_tensor(d.s[start], dtype=torch.float32)[None, None]
            hc = None
            for j in range(k):
                at = torch.as_tensor(d.a[start + j], dtype=torch.float32)[None, None]
                st, hc = self.net.next_state(st, at, hc)
            ks.append(float(np.sqrt(((st[0, 0].numpy() - d.s_next[start + k - 1]) ** 2).mean())))
        return {"state_rmse_1": float(np.sqrt((err ** 2).mean())),
                f"state_rmse_{k}": float(np.mean(ks)) if ks else float("nan"),
                "utility_mae": float(np.abs(u_hat - d.u[test]).mean()),
                "reward_mae": float(np.abs(r_hat - d.r[test]).mean()),
                "transitions": int(n), "held_out": int(len(test))}

    # ------------------------------------------------------------------ export
    def payload(self) -> TwinPayload:
        sd = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        return TwinPayload(sd, self.net.hidden, self.resid_std.copy(), self.start_states.copy())

    def to_blob(self) -> dict:
        return {"kind": "slicing-twin", "hidden": self.net.hidden, "state_dict": self.net.state_dict(),
                "resid_std": self.resid_std, "start_states": self.start_states}

    def save(self, path: Path) -> None:
        save_twin_blob(self.to_blob(), path)


def save_twin_blob(blob: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)


def net_from_payload(p: TwinPayload) -> TwinNet:
    net = TwinNet(p.hidden)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in p.state_dict.items()})
    net.eval()
    return net


def load_twin(path: str | Path) -> TwinPayload:
    """A saved twin; a file that is not one, or has the wrong shapes, raises ``TwinFileError`` naming the problem."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unreadable file is the same user error
        raise TwinFileError(f"twin file {path}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("kind") != "slicing-twin":
        raise TwinFileError(f"twin file {path}: not a saved digital twin (no kind='slicing-twin')")
    hidden = int(blob.get("hidden", 0))
    net = TwinNet(max(hidden, 1))
    try:
        net.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise TwinFileError(f"twin file {path}: weights do not fit a twin of hidden size {hidden} with "
                         f"{STATE_DIM} state and {ACTION_DIM} action inputs ({exc})") from exc
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    return TwinPayload(sd, hidden, np.asarray(blob["resid_std"]), np.asarray(blob["start_states"]))
