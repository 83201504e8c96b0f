"""The probabilistic end-to-end slice model of MicroOpt (paper 001, section IV-A and VI-A1): traffic and resources
in, a Gaussian (mu, sigma) of the per-user throughput q (Mbit/s) out.

Architecture (the paper's Fig. 2 and VI-A1): the raw inputs [traffic x (users/s), r_1 .. r_K] go through a
BatchNorm layer, three shared Dense(16) + ReLU layers, then two branches of one Dense(16) + ReLU each: the mean
head is linear, the std head softplus (plus a floor of 1e-4 so the likelihood stays finite). Loss: the Gaussian
negative log-likelihood (eq. 4), *including* the constant 0.5 log(2 pi); the paper's NLL figures are read with it.

``SliceModel.qos(traffic[I, T], r[I, K]) -> (mu[I, T], sigma[I, T])`` is the protocol every allocator uses
(``slicing/optim/microopt.py``, ``peak.py``, ``bo.py``, ``slicing/rl/cadrl.py``); it is differentiable in r (the
reparameterisation trick of section IV-A: q = mu + sigma eps). Call it in eval mode (``model.eval()``), where the
BatchNorm layer uses its running statistics; ``load_slice_model`` returns the model in eval mode.

Files: ``slicing/models/persist.py``'s format (tag ``slice_model/1``, content-hash ``version``) with the
constructor fields and the trained traffic range (the allocators refuse to extrapolate beyond it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slicing.models.persist import (
    ModelFileError,
    check_payload,
    check_version,
    module_payload,
    read_model_file,
    save_model,
    state_from_payload,
    state_mismatch,
)

RESOURCES = ("bandwidth_mbps", "cpu_millicores")
ETA = (1 / 50, 1 / 4500)  # the paper's normalisation: 50 Mbps and 4,500 millicores are the slice's maxima
R_MAX = (50.0, 4500.0)  # those maxima (Mbit/s, millicores): every allocator's box
FORMAT = "slice_model/1"
PAYLOAD_FORMAT = "slicing.slice-model-payload/1"
FIELDS = ("n_resources", "hidden", "traffic_min", "traffic_max")
SIGMA_FLOOR = 1e-4
_LOG_2PI = math.log(2.0 * math.pi)


class SliceModelFileError(ModelFileError):
    """A slice model file that is missing, unreadable or inconsistent."""


class SliceModel(nn.Module):
    """Gaussian slice model (see module docstring). ``traffic_min``/``traffic_max``: the trained traffic range."""

    def __init__(self, n_resources: int = 2, hidden: int = 16, traffic_min: float = 1.0,
                 traffic_max: float = 5.0) -> None:
        super().__init__()
        if n_resources < 1 or hidden < 1:
            raise ValueError("n_resources and hidden must be >= 1")
        self.n_resources, self.hidden = int(n_resources), int(hidden)
        self.traffic_min, self.traffic_max = float(traffic_min), float(traffic_max)
        self.version: str | None = None
        self.norm = nn.BatchNorm1d(1 + n_resources)
        self.shared = nn.Sequential(nn.Linear(1 + n_resources, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                    nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.sigma_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [N, 1 + K] = [traffic, r_1..r_K] in raw units -> (mu [N], sigma [N]) in Mbit/s."""
        h = self.shared(self.norm(features))
        mu = self.mu_head(h).squeeze(-1)
        sigma = F.softplus(self.sigma_head(h).squeeze(-1)) + SIGMA_FLOOR
        return mu, sigma

    def qos(self, traffic: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """traffic [I, T] users/s, r [I, K] -> (mu, sigma) each [I, T]; differentiable in r. Eval mode only."""
        if self.training:
            raise RuntimeError("SliceModel.qos: call model.eval() first (BatchNorm must use its running stats)")
        if traffic.dim() != 2 or r.dim() != 2 or r.shape[0] != traffic.shape[0] or r.shape[1] != self.n_resources:
            raise ValueError(f"SliceModel.qos: expected traffic [I, T] and r [I, {self.n_resources}], got "
                             f"{tuple(traffic.shape)} and {tuple(r.shape)}")
        n_i, n_t = traffic.shape
        x = traffic.to(r.dtype).reshape(n_i, n_t, 1)
        feats = torch.cat([x, r[:, None, :].expand(n_i, n_t, self.n_resources)], dim=-1)  # [I, T, 1 + K]
        mu, sigma = self(feats.reshape(n_i * n_t, 1 + self.n_resources))
        return mu.reshape(n_i, n_t), sigma.reshape(n_i, n_t)


def gaussian_nll(mu: torch.Tensor, sigma: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean of -log N(q; mu, sigma) (the paper's eq. 4), with the 0.5 log(2 pi) constant."""
    return (torch.log(sigma) + 0.5 * ((q - mu) / sigma) ** 2 + 0.5 * _LOG_2PI).mean()


def _fields(model: SliceModel) -> dict[str, Any]:
    return {"n_resources": model.n_resources, "hidden": model.hidden, "traffic_min": model.traffic_min,
            "traffic_max": model.traffic_max}


def save_slice_model(model: SliceModel, path: str | Path) -> str:
    """Write ``model`` (format ``slice_model/1``); returns its content-hash version."""
    return save_model(model, path, FORMAT, _fields(model))


def _build(fields: dict[str, Any], state: Any, error: type[ValueError], where: str) -> SliceModel:
    try:
        model = SliceModel(int(fields["n_resources"]), int(fields["hidden"]), float(fields["traffic_min"]),
                           float(fields["traffic_max"]))
    except (TypeError, ValueError) as err:
        raise error(f"{where}: bad constructor fields ({err})") from None
    problem = state_mismatch(model, state)
    if problem:
        raise error(f"{where}: {problem}")
    model.load_state_dict(state)
    model.eval()
    return model


def load_slice_model(path: str | Path) -> SliceModel:
    """Read a ``save_slice_model`` file, check its shapes and version; the model is in eval mode."""
    p = Path(path)
    data = read_model_file(p, ("format", "state_dict", "version", *FIELDS), SliceModelFileError, "slice model",
                           FORMAT)
    model = _build(data, data["state_dict"], SliceModelFileError, str(p))
    check_version(model, data["version"], SliceModelFileError, str(p))
    return model


def slice_model_payload(model: SliceModel) -> dict[str, Any]:
    """The model as plain data for Ray's object store (``persist.module_payload``)."""
    return module_payload(model, PAYLOAD_FORMAT, _fields(model))


def slice_model_from_payload(payload: object) -> SliceModel:
    """Rebuild (and check) a model from ``slice_model_payload``."""
    data = check_payload(payload, PAYLOAD_FORMAT, ("version", "state", *FIELDS), "slice model payload")
    state = state_from_payload(data["state"])
    if state.get("norm.num_batches_tracked") is not None:  # a 0-d buffer comes back 1-d from the payload
        state["norm.num_batches_tracked"] = state["norm.num_batches_tracked"].reshape(())
    model = _build(data, state, ValueError, "slice model payload")
    check_version(model, data["version"], ValueError, "slice model payload")
    return model
