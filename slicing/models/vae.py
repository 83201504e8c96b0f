"""A small VAE that maps an agent's (state, reward) samples into a low-dimensional latent space (TL-aided MADRL,
section IV-B "Feature extraction with VAE", V-4).

For a sample x = [s | r] (``in_dim`` = obs_dim + 1 columns) the encoder gives the approximate posterior
q(z | x) = N(mu(x), diag(sigma^2(x))); the decoder reconstructs x_hat from z = mu + sigma * eps. Loss (paper eq. 6)::

    L = E_x [ ||x - x_hat||^2 ] + beta * E_x [ KL(N(mu, sigma^2) || N(0, I)) ]
    KL = 1/2 * sum_d (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1)

The squared error is summed over the (standardised) columns and averaged over the batch, the KL summed over the
latent dimensions; ``beta`` weighs the two. One general VAE is trained on the samples of all candidate sources
and the target together, so their posteriors live in one latent space (``slicing/transfer/ranking.py``).

Architecture: encoder ``in -> h1 -> h2 -> 2 * latent`` (Linear + ReLU, the last Linear gives [mu | log sigma^2]),
decoder ``latent -> h2 -> h1 -> in`` (Linear + ReLU, linear output), 3 layers each as in the paper (V-4). The paper's
layer sizes and latent dimension did not survive in our copy of the text; ours are (64, 32) and 4.

Input standardisation: ``feat_mean``/``feat_std`` buffers fitted on the training samples; a column that is
constant there (std < 1e-6, e.g. the mask of a slice never active) gets std 1, so it stays finite elsewhere.
``encode`` and ``forward`` take raw samples. ``version`` is the content hash of the weights once saved or loaded,
as for the QoS estimator; files in the one format of ``slicing/models/persist.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn

from slicing.config import Strict
from slicing.models.persist import (
    ModelFileError,
    check_version,
    read_model_file,
    save_model,
)
from slicing.models.persist import weights_version as weights_version  # re-exported: the VAE's content hash
from slicing.threads import single_torch_thread

FILE_FORMAT = "slicing.vae/1"
_STD_FLOOR = 1e-6
_LOGVAR_CLAMP = 20.0  # |log sigma^2| bound in training: keeps exp() finite on the first steps


class VaeConfig(Strict):
    """Training settings of the general VAE."""

    hidden: tuple[int, int] = Field(default=(64, 32), description="encoder hidden sizes h1, h2 (decoder mirrors)")
    latent_dim: int = Field(default=4, ge=1, le=64, description="dimension of the latent space")
    beta: float = Field(default=0.1, ge=0, le=100, description="weight of the KL term in the loss")
    lr: float = Field(default=2e-3, gt=0, le=1, description="Adam learning rate")
    epochs: int = Field(default=60, ge=1, le=10_000, description="passes over the samples")
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="minibatch size")


class VaeFileError(ModelFileError):
    """A VAE file that is missing, unreadable or inconsistent; the message names the problem."""


class Vae(nn.Module):
    """See module docstring. ``encode(x[B, in_dim]) -> (mu[B, L], logvar[B, L])`` on raw samples;
    ``forward(x) -> (x_hat_standardised[B, in_dim], mu, logvar)`` uses z = mu (no sampling)."""

    def __init__(self, in_dim: int, hidden: tuple[int, int] = (64, 32), latent_dim: int = 4) -> None:
        super().__init__()
        self.in_dim, self.latent_dim = int(in_dim), int(latent_dim)
        self.hidden = (int(hidden[0]), int(hidden[1]))
        h1, h2 = self.hidden
        self.encoder = nn.Sequential(
            nn.Linear(self.in_dim, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 2 * self.latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent_dim, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, self.in_dim)
        )
        self.register_buffer("feat_mean", torch.zeros(self.in_dim))
        self.register_buffer("feat_std", torch.ones(self.in_dim))
        self.version: str | None = None

    def set_normalisation(self, mean: torch.Tensor | np.ndarray, std: torch.Tensor | np.ndarray) -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(self.in_dim)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(self.in_dim)
        std_t = torch.where(std_t < _STD_FLOOR, torch.ones_like(std_t), std_t)
        self.feat_mean.copy_(mean_t)
        self.feat_std.copy_(std_t)

    def standardise(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        xt = torch.as_tensor(x).detach().to(dtype=torch.float32, device="cpu")
        if xt.ndim != 2 or xt.shape[1] != self.in_dim:
            raise ValueError(f"VAE input must be [n, {self.in_dim}] (obs_dim + 1 columns), got {tuple(xt.shape)}")
        return (xt - self.feat_mean) / self.feat_std  # [B, in_dim]

    def encode_standardised(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(xn)  # [B, 2L]
        return h[:, : self.latent_dim], h[:, self.latent_dim :]  # mu [B, L], logvar [B, L]

    def encode(self, x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters (mu, log sigma^2), each ``[B, latent_dim]``, of raw samples ``x[B, in_dim]``."""
        return self.encode_standardised(self.standardise(x))

    def forward(self, x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decoder(mu), mu, logvar


# ------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class VaeReport:
    losses: tuple[float, ...]  # mean training loss per epoch
    recon: float  # final mean squared error (summed over columns) with z = mu
    kl: float  # final mean KL to the prior
    samples: int
    epochs: int
    seconds: float


def vae_loss(model: Vae, xn: torch.Tensor, beta: float, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, recon, kl) of a standardised minibatch ``xn[b, in_dim]``; z sampled with the local generator."""
    mu, logvar = model.encode_standardised(xn)  # [b, L] each
    logvar = logvar.clamp(-_LOGVAR_CLAMP, _LOGVAR_CLAMP)
    eps = torch.randn(mu.shape, generator=generator)  # [b, L]
    z = mu + torch.exp(0.5 * logvar) * eps  # reparameterisation
    recon = ((model.decoder(z) - xn) ** 2).sum(dim=1).mean()
    kl = (0.5 * (mu**2 + logvar.exp() - logvar - 1.0)).sum(dim=1).mean()
    return recon + beta * kl, recon, kl


def _init_weights(model: Vae, generator: torch.Generator) -> None:
    """PyTorch's default Linear init (U(+-1/sqrt(fan_in))) drawn from a local generator."""
    with torch.no_grad():
        for layer in [m for m in model.modules() if isinstance(m, nn.Linear)]:
            bound = 1.0 / np.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)


def train_vae(samples: np.ndarray, cfg: VaeConfig | None = None, seed: int = 0) -> tuple[Vae, VaeReport]:
    """Fit a VAE on ``samples[n, in_dim]`` (all agents stacked). Deterministic given (samples, cfg, seed):
    init, shuffles and the reparameterisation noise come from one local ``torch.Generator``."""
    cfg = cfg or VaeConfig()
    t0 = time.perf_counter()
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float32)  # [n, in_dim]
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"train_vae: samples must be [n >= 2, in_dim >= 1], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("train_vae: samples must be finite")
    gen = torch.Generator().manual_seed(int(seed))
    model = Vae(x.shape[1], cfg.hidden, cfg.latent_dim)
    _init_weights(model, gen)
    model.set_normalisation(x.mean(dim=0), x.std(dim=0, unbiased=False))
    xn = model.standardise(x)  # [n, in_dim] standardised once
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    with single_torch_thread():
        model.train()
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(xn), generator=gen)  # [n]
            total = 0.0
            for lo in range(0, len(xn), cfg.batch_size):
                batch = xn[perm[lo : lo + cfg.batch_size]]  # [b, in_dim]
                loss, _, _ = vae_loss(model, batch, cfg.beta, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(xn))
        model.eval()
        with torch.inference_mode():
            mu, logvar = model.encode_standardised(xn)
            recon = float(((model.decoder(mu) - xn) ** 2).sum(dim=1).mean())
            kl = float((0.5 * (mu**2 + logvar.exp() - logvar - 1.0)).sum(dim=1).mean())
    report = VaeReport(losses=tuple(losses), recon=recon, kl=kl, samples=len(xn), epochs=cfg.epochs,
                       seconds=time.perf_counter() - t0)
    return model, report


# ---------------------------------------------------------------------------------------------- persistence
# {"format": FILE_FORMAT, "state_dict", "in_dim": int, "hidden": [int, int], "latent_dim": int, "version"}

_REQUIRED_KEYS = ("format", "state_dict", "in_dim", "hidden", "latent_dim", "version")


def save_vae(model: Vae, path: str | Path) -> str:
    """Write one ``weights_only``-loadable torch file (the normalisation is part of the state); returns the
    version and sets ``model.version``."""
    return save_model(model, path, FILE_FORMAT, {"in_dim": int(model.in_dim), "hidden": list(model.hidden),
                                                 "latent_dim": int(model.latent_dim)})


def _shape_problem(in_dim: object, hidden: object, latent_dim: object) -> str:
    if not isinstance(in_dim, int) or in_dim < 1:
        return f"invalid input dimension {in_dim!r}"
    if not isinstance(hidden, list | tuple) or len(hidden) != 2 or not all(isinstance(h, int) and h > 0
                                                                           for h in hidden):
        return f"invalid hidden sizes {hidden!r} (two positive ints)"
    if not isinstance(latent_dim, int) or latent_dim < 1:
        return f"invalid latent dimension {latent_dim!r}"
    return ""


def load_vae(path: str | Path) -> Vae:
    """Read a file written by ``save_vae``; raises ``VaeFileError`` naming what is wrong."""
    p = Path(path)
    payload = read_model_file(p, _REQUIRED_KEYS, VaeFileError, "VAE", FILE_FORMAT)
    in_dim, hidden, latent_dim = payload["in_dim"], payload["hidden"], payload["latent_dim"]
    problem = _shape_problem(in_dim, hidden, latent_dim)
    if problem:
        raise VaeFileError(f"VAE file {p}: {problem}")
    model = Vae(in_dim, tuple(hidden), latent_dim)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0]
        raise VaeFileError(f"VAE file {p}: weights do not match in_dim={in_dim}, hidden={list(hidden)}, "
                           f"latent_dim={latent_dim} ({first})") from None
    check_version(model, payload["version"], VaeFileError, f"VAE file {p}")
    return model
