"""The SLA-violation predictor of safe DRL's baseline switching (paper 003, Fig. 4a): g(s, x) -> P(c = 1).

A small MLP on (observation [5S], shares [S]) with standardised inputs, trained with BCE on an agent's own
transitions (observation, applied shares, cost); ``auc_score`` is the held-out ranking quality of its report.
Pure torch and numpy: ``slicing.rl.safety`` installs ``predict_proba`` as the switching rule of its env.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slicing.threads import single_torch_thread


class ViolationPredictor(nn.Module):
    """MLP g(obs, shares) -> logit of P(c = 1 in the period allocated with these shares); inputs standardised."""

    def __init__(self, n_in: int, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(n_in, h), nn.ReLU()]
            n_in = h
        self.net = nn.Sequential(*layers, nn.Linear(n_in, 1))
        self.register_buffer("mu", torch.zeros(self.net[0].in_features))
        self.register_buffer("sd", torch.ones(self.net[0].in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 6S] -> [B]
        return self.net((x - self.mu) / self.sd).squeeze(-1)

    def predict_proba(self, obs: np.ndarray, shares: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.concatenate([obs, shares], axis=1).astype(np.float32))  # [N, 6S]
        with torch.no_grad():
            logit = self(x).numpy().astype(np.float64)  # [N]
        return 1.0 / (1.0 + np.exp(-logit))  # float64: P > 0 for any finite logit (threshold 0 always switches)


def auc_score(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN when one class is missing."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    _, inv, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inv]  # average 1-based rank per tied value
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def train_predictor(obs: np.ndarray, shares: np.ndarray, cost: np.ndarray, seed: int = 0, epochs: int = 20,
                    lr: float = 2e-3, batch: int = 1024, test_fraction: float = 0.25,
                    ) -> tuple[ViolationPredictor, dict[str, float]]:
    """BCE-train the predictor on (obs [M, 5S], shares [M, S]) -> cost [M]; report held-out accuracy and AUC."""
    y = np.asarray(cost, dtype=np.float32)
    if len(y) < 8 or y.min() == y.max():
        raise ValueError(f"predictor: need transitions of both classes (got {len(y)} with {int(y.sum())} violations)")
    x = np.concatenate([obs, shares], axis=1).astype(np.float32)  # [M, 6S]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = max(1, round(test_fraction * len(y)))
    test, tr = perm[:n_test], perm[n_test:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ViolationPredictor(x.shape[1])
    model.mu.copy_(torch.from_numpy(x[tr].mean(axis=0)))
    model.sd.copy_(torch.from_numpy(x[tr].std(axis=0) + 1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with single_torch_thread():
        for _ in range(epochs):
            for idx in np.array_split(rng.permutation(tr), max(1, len(tr) // batch)):
                opt.zero_grad()
                loss_fn(model(xt[idx]), yt[idx]).backward()
                opt.step()
    model.eval()
    p = model.predict_proba(obs[test], shares[test])
    yt_np = y[test]
    report = {"samples": len(y), "positive_rate": float(y.mean()), "accuracy": float(((p > 0.5) == yt_np).mean()),
              "auc": auc_score(yt_np, p), "majority_accuracy": float(max(yt_np.mean(), 1 - yt_np.mean()))}
    return model, report
