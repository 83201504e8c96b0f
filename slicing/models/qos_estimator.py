"""IDLA's per-(cell, slice) QoS estimator f(x, z) in [0, 1], its fast tabulation and its files.

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

Training: ``slicing/models/qos_training.py``. Files and the object-store payload: ``save_estimator`` /
``load_estimator`` and ``estimator_payload`` / ``estimator_from_payload`` below, in the one format of
``slicing/models/persist.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slicing.config import HISTORY, EstimatorConfig
from slicing.models.persist import (
    ModelFileError,
    check_payload,
    check_version,
    module_payload,
    read_model_file,
    save_model,
    state_from_payload,
    state_mismatch,
    weights_version,
)

IN_DIM = 2 * HISTORY + 3  # [x, users(H), cqi(H), throughput req, delay req]
FILE_FORMAT = "slicing.qos_estimator/1"
PAYLOAD_FORMAT = "slicing.estimator-payload/1"
# Memory of one tabulation chunk. Must stay <= ~300 MB; 64 MB chunks measured fastest on 2 cores (cache-friendlier
# than one huge chunk, and few enough parallel regions to stay robust when another process shares the cores).
_TAB_BYTES = 64 * 2**20
STD_FLOOR = 1e-6
_F_CHUNK = 65_536  # rows per pass of ``f_from_layer1`` (measured: 45 ms per 400k rows on 1 thread, 88 ms unchunked)


class EstimatorFileError(ModelFileError):
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
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(self.in_dim).clamp_min(STD_FLOOR)
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


def as_float_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
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
    zt = as_float_tensor(z)  # [N, S, 12]
    gt = as_float_tensor(grid).reshape(-1)  # [G]
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


def layer1_z(model: QosEstimator, z: torch.Tensor) -> torch.Tensor:
    """Layer 1's z part plus its bias, ``W1[:, 1:] @ zn + b1``, for M (cell, slice) pairs: ``z[M, 12]`` -> ``[M, H1]``.

    What ``tabulate`` computes once per pair; ``f_from_layer1`` then evaluates f at any x from it.
    """
    first = model.layers[0]
    with torch.inference_mode():
        zn = (as_float_tensor(z) - model.feat_mean[1:]) / model.feat_std[1:]  # [M, 12]
        return torch.addmm(first.bias, zn, first.weight[:, 1:].T)  # [M, H1]


def f_from_layer1(model: QosEstimator, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x_m, z_m) from ``a = layer1_z(model, z)``: ``a[M, H1]``, ``x[M]`` -> float32 ``[M]``.

    Equals ``model(features)`` up to float32 rounding (layer 1 is summed in another order), like ``tabulate``.
    """
    out = torch.empty(len(x), dtype=torch.float32)
    w1x = model.layers[0].weight[None, :, 0]  # [1, H1]
    with torch.inference_mode():
        xn = (x.float() - model.feat_mean[0]) / model.feat_std[0]  # [M]
        for lo in range(0, len(x), _F_CHUNK):  # cache-sized chunks: 2x faster than one pass over 400k rows
            hi = lo + _F_CHUNK
            h = torch.relu_(torch.addcmul(a[lo:hi], xn[lo:hi, None], w1x))  # [m, H1]
            for layer in model.layers[1:]:
                h = torch.relu_(torch.addmm(layer.bias, h, layer.weight.T))  # [m, H_k]
            out[lo:hi] = torch.addmm(model.out.bias, h, model.out.weight.T).clamp_(0.0, 1.0)[:, 0]  # [m]
    return out


# ---------------------------------------------------------------------------------------------- persistence
# {"format": FILE_FORMAT, "state_dict", "hidden": [int], "in_dim": int, "feat_mean": [13], "feat_std": [13],
#  "version"} (slicing/models/persist.py); the normalisation is stored twice (state_dict and its own keys).

_REQUIRED_KEYS = ("format", "state_dict", "hidden", "in_dim", "feat_mean", "feat_std", "version")
_PAYLOAD_KEYS = ("version", "hidden", "in_dim", "state")


def save_estimator(model: QosEstimator, path: str | Path) -> str:
    """Write one torch file (plain tensors / lists / ints / strings, ``weights_only``-loadable); returns version.

    Also sets ``model.version``.
    """
    return save_model(model, path, FILE_FORMAT, {
        "hidden": list(model.hidden),
        "in_dim": int(model.in_dim),
        "feat_mean": model.feat_mean.detach().cpu().clone(),
        "feat_std": model.feat_std.detach().cpu().clone(),
    })


def load_estimator(path: str | Path) -> QosEstimator:
    """Read a file written by ``save_estimator``; raises ``EstimatorFileError`` naming what is wrong."""
    p = Path(path)
    payload = read_model_file(p, _REQUIRED_KEYS, EstimatorFileError, "estimator", FILE_FORMAT)
    in_dim, hidden = payload["in_dim"], payload["hidden"]
    if not isinstance(in_dim, int) or in_dim != IN_DIM:
        raise EstimatorFileError(f"estimator file {p}: wrong input dimension {in_dim!r}, expected {IN_DIM}")
    if not isinstance(hidden, list | tuple) or not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise EstimatorFileError(f"estimator file {p}: invalid hidden sizes {hidden!r}")
    model = QosEstimator(hidden, in_dim)
    problem = state_mismatch(model, payload["state_dict"])
    if problem:
        raise EstimatorFileError(f"estimator file {p}: weights do not match hidden sizes {list(hidden)}: {problem}")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
        model.set_normalisation(payload["feat_mean"], payload["feat_std"])
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0]
        raise EstimatorFileError(f"estimator file {p}: inconsistent weights or normalisation ({first})") from None
    check_version(model, payload["version"], EstimatorFileError, f"estimator file {p}")
    return model


def model_version(model: QosEstimator) -> str:
    """The content hash of ``model`` (its ``version`` attribute if set, else computed)."""
    return model.version or weights_version(model)


def estimator_payload(model: QosEstimator) -> dict[str, Any]:
    """Plain-data form of ``model`` for ``ray.put``: ``{"format": PAYLOAD_FORMAT, "version", "hidden", "in_dim",
    "state": {name: float32 ndarray}}``; shards compare versions and reload only when it changes."""
    return module_payload(model, PAYLOAD_FORMAT, {"hidden": list(model.hidden), "in_dim": int(model.in_dim)})


def estimator_from_payload(payload: dict[str, Any]) -> QosEstimator:
    """Rebuild the estimator; raises ``ValueError`` naming the payload field that is wrong."""
    payload = check_payload(payload, PAYLOAD_FORMAT, _PAYLOAD_KEYS, "estimator payload")
    model = QosEstimator(payload["hidden"], payload["in_dim"])
    try:
        model.load_state_dict(state_from_payload(payload["state"]), strict=True)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"estimator payload.state: does not match hidden sizes {payload['hidden']}: {first}") from None
    check_version(model, payload["version"], ValueError, "estimator payload.version", what="")
    return model
