"""IDLA's per-(cell, slice) QoS estimator f(x, z) in [0, 1], its fast tabulation, training and persistence.

Input features, in this order (``IN_DIM = 2 * HISTORY + 3 = 13``)::

    [x, users(t-5..t-1), cqi(t-5..t-1), throughput requirement (Mbit/s), delay requirement (ms)]

``x`` is the slice's resource share in [0, 1]; the 12 others are the local features ``z``.

Normalisation: the model holds ``feat_mean`` / ``feat_std`` buffers ([13]) fitted on the training part of the
data. Column 0 (``x``) is NOT normalised: its mean/std are pinned to 0/1 by ``train_estimator`` (``x`` already
lives in [0, 1]). ``forward`` and ``tabulate`` nevertheless apply whatever the buffers hold, so a model whose
buffers were set otherwise still computes the same function in both.

Tabulation (``tabulate``): during an allocation search the features ``z`` are fixed, so f is a 1-D function of
``x`` per (cell, slice). The first layer splits as ``W1 @ [x, zn] + b1 = (W1[:, 1:] @ zn + b1) + W1[:, 0] * x``:
the bracket is computed once per (cell, slice), each grid point then costs one broadcast add + ReLU followed by
the (small) remaining layers as batched matmuls.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slicing.config import HISTORY, EstimatorConfig
from slicing.threads import single_torch_thread

IN_DIM = 2 * HISTORY + 3  # [x, users(H), cqi(H), throughput req, delay req]
FILE_FORMAT = "slicing.qos_estimator/1"
# Memory of one tabulation chunk. Must stay <= ~300 MB; 64 MB chunks measured fastest on 2 cores (cache-friendlier
# than one huge chunk, and few enough parallel regions to stay robust when another process shares the cores).
_TAB_BYTES = 64 * 2**20
_STD_FLOOR = 1e-6


class EstimatorFileError(ValueError):
    """An estimator file that is missing, unreadable or inconsistent; the message names the problem."""


class QosEstimator(nn.Module):
    """MLP f(x, z) -> [0, 1]: normalisation, ``len(hidden)`` ReLU layers, a linear output clamped to [0, 1].

    Why a clamp and not a sigmoid: about 80 % of the targets are exactly 1 (satisfied slices), so MAE training
    drives a sigmoid into saturation where its gradient vanishes, and the network can collapse to the constant
    f = 1 (seen on the 1,500-period IDLA run: f = 1 for every x, the oracle then allocated nothing). Training
    uses the raw output (``raw``) with the L1 loss, whose gradient never vanishes; |clamp(o) - y| <= |o - y|
    for y in [0, 1], so the training loss bounds the reported MAE.

    ``forward(features[B, 13]) -> [B]``. ``version`` is the content hash of the weights once saved or loaded
    (``None`` for a model that was never persisted); ``weights_version(model)`` recomputes it.
    """

    def __init__(self, hidden: Sequence[int] = EstimatorConfig().hidden, in_dim: int = IN_DIM) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (self.in_dim, *self.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.out = nn.Linear(sizes[-1], 1)
        self.register_buffer("feat_mean", torch.zeros(self.in_dim))
        self.register_buffer("feat_std", torch.ones(self.in_dim))
        self.version: str | None = None

    def set_normalisation(self, mean: torch.Tensor | np.ndarray, std: torch.Tensor | np.ndarray) -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(self.in_dim)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(self.in_dim).clamp_min(_STD_FLOOR)
        self.feat_mean.copy_(mean_t)
        self.feat_std.copy_(std_t)

    def hidden_from_normalised(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        """The unclamped output ``[B]`` (what training fits)."""
        h = (features - self.feat_mean) / self.feat_std  # [B, 13]
        h = self.hidden_from_normalised(h)  # [B, H_last]
        return self.out(h).squeeze(-1)  # [B]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.raw(features).clamp(0.0, 1.0)  # [B]


def init_weights(model: QosEstimator, generator: torch.Generator) -> None:
    """PyTorch's default Linear init (U(+-1/sqrt(fan_in)) for weight and bias) drawn from a local generator."""
    with torch.no_grad():
        for layer in [*model.layers, model.out]:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)


def build_estimator(hidden: Sequence[int], seed: int) -> QosEstimator:
    """A freshly initialised estimator, deterministic given ``seed`` (no global RNG touched)."""
    model = QosEstimator(hidden)
    init_weights(model, torch.Generator().manual_seed(int(seed)))
    return model


# ----------------------------------------------------------------------------------------------- tabulation


def _as_float_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a).detach().to(dtype=torch.float32, device="cpu")


def _tab_chunk_rows(model: QosEstimator) -> int:
    """Rows (= (cell, slice, grid) triples) per chunk so one chunk's activations stay under ``_TAB_BYTES``."""
    per_row = 4 * (2 * sum(model.hidden) + 4)  # two live activations per layer, float32
    return max(1024, _TAB_BYTES // per_row)


def tabulate(model: QosEstimator, z: np.ndarray | torch.Tensor, grid: np.ndarray | torch.Tensor) -> np.ndarray:
    """f(x_g, z_cs) for every (cell, slice) and grid point: ``z[N, S, 12]``, ``grid[G]`` -> float32 ``[N, S, G]``.

    Layer 1's z contribution is computed once per (cell, slice); the rest runs as batched matmuls on chunks of
    cells (bounded memory). Equals ``model(features)`` at the grid points up to float32 rounding.
    """
    zt = _as_float_tensor(z)  # [N, S, 12]
    gt = _as_float_tensor(grid).reshape(-1)  # [G]
    n, s, nz = zt.shape
    if nz != model.in_dim - 1:
        raise ValueError(f"tabulate: z has {nz} features, the model expects {model.in_dim - 1}")
    g = gt.numel()
    out = torch.empty((n, s, g), dtype=torch.float32)
    cells_per_chunk = max(1, _tab_chunk_rows(model) // max(1, s * g))
    with torch.inference_mode():
        first = model.layers[0]
        w1x = first.weight[:, 0]  # [H1]
        w1z = first.weight[:, 1:]  # [H1, 12]
        xn = (gt - model.feat_mean[0]) / model.feat_std[0]  # [G]
        xw = xn[:, None] * w1x[None, :]  # [G, H1]
        for lo in range(0, n, cells_per_chunk):
            hi = min(n, lo + cells_per_chunk)
            zn = (zt[lo:hi] - model.feat_mean[1:]) / model.feat_std[1:]  # [n, S, 12]
            a = torch.addmm(first.bias, zn.reshape(-1, nz), w1z.T)  # [n*S, H1]
            h = a[:, None, :] + xw[None, :, :]  # [n*S, G, H1]
            h = torch.relu_(h).reshape(-1, h.shape[-1])  # [n*S*G, H1]
            for layer in model.layers[1:]:
                h = torch.relu_(torch.addmm(layer.bias, h, layer.weight.T))  # [n*S*G, H_k]
            f = torch.addmm(model.out.bias, h, model.out.weight.T).clamp_(0.0, 1.0)  # [n*S*G, 1]
            out[lo:hi] = f.reshape(hi - lo, s, g)  # [n, S, G]
    return out.numpy()


# ------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainReport:
    mae_test: float
    mae_train: float
    samples: int
    epochs: int
    seconds: float


def _split(n: int, test_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if n < 2:
        raise ValueError(f"train_estimator: need at least 2 samples, got {n}")
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    perm = torch.randperm(n, generator=generator)  # [n]
    return perm[n_test:], perm[:n_test]


def _fit_normalisation(train_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train_x.mean(dim=0)  # [13]
    std = train_x.std(dim=0, unbiased=False).clamp_min(_STD_FLOOR)  # [13]
    mean[0], std[0] = 0.0, 1.0  # x is not normalised
    return mean, std


class _FlatAdamL1:
    """Minibatch MAE + Adam on the MLP, with a hand-written backward pass over one flat parameter vector.

    Numerically the same update as ``nn.L1Loss`` + autograd + ``torch.optim.Adam(lr)`` (default betas, eps,
    no weight decay; tests compare both), but ~2x faster on small batches: per step ~25 tensor ops instead of
    autograd's graph and the optimizer's per-parameter Python bookkeeping. Inputs are already normalised.
    """

    def __init__(self, model: QosEstimator, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        params = [t for layer in [*model.layers, model.out] for t in (layer.weight, layer.bias)]
        self.flat = torch.cat([p.detach().reshape(-1) for p in params])  # [P]
        self.grad = torch.zeros_like(self.flat)  # [P]
        self.m1 = torch.zeros_like(self.flat)
        self.m2 = torch.zeros_like(self.flat)
        views, gviews, offset = [], [], 0
        for p in params:
            views.append(self.flat[offset : offset + p.numel()].view(p.shape))
            gviews.append(self.grad[offset : offset + p.numel()].view(p.shape))
            offset += p.numel()
        self.weights, self.biases = views[0::2], views[1::2]
        self.gweights, self.gbiases = gviews[0::2], gviews[1::2]
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.t = 0

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One update on a normalised minibatch ``xb[b, 13]``, ``yb[b]``; returns |f - y| ``[b]``."""
        acts = [xb]
        h = xb
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = torch.relu_(torch.addmm(b, h, w.T))  # [b, H_k]
            acts.append(h)
        out = torch.addmm(self.biases[-1], h, self.weights[-1].T)  # [b, 1] raw output
        diff = out[:, 0] - yb  # [b]
        g = torch.sign(diff).mul_(1.0 / len(yb))[:, None]  # [b, 1] dLoss/dout
        for k in range(len(self.weights) - 1, -1, -1):
            torch.mm(g.T, acts[k], out=self.gweights[k])  # [H_k, H_{k-1}]
            torch.sum(g, dim=0, out=self.gbiases[k])  # [H_k]
            if k:
                g = (g @ self.weights[k]).mul_(acts[k] > 0)  # [b, H_{k-1}]
        self._adam()
        return diff.abs_()

    def _adam(self) -> None:
        self.t += 1
        self.m1.lerp_(self.grad, 1.0 - self.b1)
        self.m2.mul_(self.b2).addcmul_(self.grad, self.grad, value=1.0 - self.b2)
        bc1 = 1.0 - self.b1**self.t
        bc2_sqrt = math.sqrt(1.0 - self.b2**self.t)
        denom = (self.m2.sqrt() / bc2_sqrt).add_(self.eps)  # [P]
        self.flat.addcdiv_(self.m1, denom, value=-self.lr / bc1)

    def write_back(self, model: QosEstimator) -> None:
        layers = [*model.layers, model.out]
        with torch.no_grad():
            for layer, w, b in zip(layers, self.weights, self.biases, strict=True):
                layer.weight.copy_(w)
                layer.bias.copy_(b)


def _mae(model: QosEstimator, x: torch.Tensor, y: torch.Tensor, chunk: int = 262_144) -> float:
    if len(x) == 0:
        return float("nan")
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, len(x), chunk):
            total += float((model(x[lo : lo + chunk]) - y[lo : lo + chunk]).abs().sum(dtype=torch.float64))
    return total / len(x)


def train_estimator(
    features: np.ndarray,
    targets: np.ndarray,
    cfg: EstimatorConfig,
    seed: int,
    progress: Callable[[int, float], None] | None = None,
    held_out: Callable[[int, float], None] | None = None,
    held_out_every: int = 1,
) -> tuple[QosEstimator, TrainReport]:
    """Fit f on ``features[n, 13]`` -> ``targets[n]`` in [0, 1] (MAE loss, Adam, minibatches of cfg.batch_size).

    The held-out part (cfg.test_fraction) and the epoch shuffles come from a local ``torch.Generator`` seeded
    with ``seed``; the result is deterministic given (data, cfg, seed). ``progress(epoch, train_loss)`` is
    called after each epoch (1-based) with the epoch's mean minibatch loss. ``held_out(epoch, mae_test)`` is
    called every ``held_out_every`` epochs and after the last one with the held-out MAE so far (used by Tune
    sweeps to stop bad trials early); it does not change the result.
    """
    t0 = time.perf_counter()
    x_all = _as_float_tensor(features)  # [n, 13]
    y_all = _as_float_tensor(targets).reshape(-1)  # [n]
    if x_all.ndim != 2 or x_all.shape[1] != IN_DIM:
        raise ValueError(f"train_estimator: features must be [n, {IN_DIM}], got {tuple(x_all.shape)}")
    if len(y_all) != len(x_all):
        raise ValueError(f"train_estimator: {len(x_all)} feature rows but {len(y_all)} targets")
    gen = torch.Generator().manual_seed(int(seed))
    train_idx, test_idx = _split(len(x_all), cfg.test_fraction, gen)
    x_tr, y_tr = x_all[train_idx], y_all[train_idx]  # [n_tr, 13], [n_tr]
    x_te, y_te = x_all[test_idx], y_all[test_idx]  # [n_te, 13], [n_te]

    model = QosEstimator(cfg.hidden)
    init_weights(model, gen)
    mean, std = _fit_normalisation(x_tr)
    model.set_normalisation(mean, std)
    xn_tr = (x_tr - mean) / std  # [n_tr, 13] normalised once, not per minibatch
    trainer = _FlatAdamL1(model, lr=cfg.lr)
    n_tr, bs = len(xn_tr), cfg.batch_size
    with torch.no_grad(), single_torch_thread():
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(n_tr, generator=gen)  # [n_tr]
            xs, ys = xn_tr[perm], y_tr[perm]  # shuffled once per epoch, then contiguous slices
            total = torch.zeros((), dtype=torch.float64)
            for lo in range(0, n_tr, bs):
                abs_err = trainer.step(xs[lo : lo + bs], ys[lo : lo + bs])  # [b]
                if progress is not None:
                    total += abs_err.sum(dtype=torch.float64)
            if progress is not None:
                trainer.write_back(model)
                progress(epoch, float(total) / n_tr)
            if held_out is not None and (epoch % max(1, held_out_every) == 0 or epoch == cfg.epochs):
                trainer.write_back(model)
                held_out(epoch, _mae(model, x_te, y_te))
        trainer.write_back(model)
    model.eval()
    report = TrainReport(
        mae_test=_mae(model, x_te, y_te),
        mae_train=_mae(model, x_tr, y_tr),
        samples=len(x_all),
        epochs=cfg.epochs,
        seconds=time.perf_counter() - t0,
    )
    return model, report


# ---------------------------------------------------------------------------------------------- persistence

_REQUIRED_KEYS = ("format", "state_dict", "hidden", "in_dim", "feat_mean", "feat_std", "version")


def weights_version(model: QosEstimator) -> str:
    """First 12 hex chars of sha256 over the state (names, shapes, float32 bytes) in a fixed key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        arr = np.ascontiguousarray(tensor.detach().cpu().to(torch.float32).numpy())
        digest.update(name.encode())
        digest.update(str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:12]


def save_estimator(model: QosEstimator, path: str | Path) -> str:
    """Write one torch file (plain tensors / lists / ints / strings, ``weights_only``-loadable); returns version.

    Also sets ``model.version``.
    """
    version = weights_version(model)
    payload = {
        "format": FILE_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "hidden": list(model.hidden),
        "in_dim": int(model.in_dim),
        "feat_mean": model.feat_mean.detach().cpu().clone(),
        "feat_std": model.feat_std.detach().cpu().clone(),
        "version": version,
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(p)
    model.version = version
    return version


def _read_payload(p: Path) -> dict:
    if not p.is_file():
        raise EstimatorFileError(f"estimator file {p} does not exist")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the caller
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EstimatorFileError(f"estimator file {p} is not a readable torch file (corrupt?): {first}") from None
    if not isinstance(payload, dict):
        raise EstimatorFileError(f"estimator file {p}: expected a dict, found {type(payload).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise EstimatorFileError(f"estimator file {p}: missing keys {missing}")
    return payload


def _state_mismatch(model: QosEstimator, state: object) -> str:
    """'' if ``state`` has exactly the model's keys and tensor shapes, else a short description."""
    if not isinstance(state, dict):
        return f"state_dict is a {type(state).__name__}, not a dict"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        return f"missing {missing}, unexpected {extra}"
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            return f"{key} is a {type(value).__name__}, not a tensor"
        if tuple(value.shape) != shape:
            return f"{key} has shape {tuple(value.shape)}, expected {shape}"
    return ""


def load_estimator(path: str | Path) -> QosEstimator:
    """Read a file written by ``save_estimator``; raises ``EstimatorFileError`` naming what is wrong."""
    p = Path(path)
    payload = _read_payload(p)
    in_dim, hidden = payload["in_dim"], payload["hidden"]
    if not isinstance(in_dim, int) or in_dim != IN_DIM:
        raise EstimatorFileError(f"estimator file {p}: wrong input dimension {in_dim!r}, expected {IN_DIM}")
    if not isinstance(hidden, list | tuple) or not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise EstimatorFileError(f"estimator file {p}: invalid hidden sizes {hidden!r}")
    model = QosEstimator(hidden, in_dim)
    problem = _state_mismatch(model, payload["state_dict"])
    if problem:
        raise EstimatorFileError(f"estimator file {p}: weights do not match hidden sizes {list(hidden)}: {problem}")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
        model.set_normalisation(payload["feat_mean"], payload["feat_std"])
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0]
        raise EstimatorFileError(f"estimator file {p}: inconsistent weights or normalisation ({first})") from None
    model.eval()
    version = weights_version(model)
    if payload["version"] != version:
        raise EstimatorFileError(
            f"estimator file {p}: stored version {payload['version']!r} does not match its weights ({version})"
        )
    model.version = version
    return model
