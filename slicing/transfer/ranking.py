"""Inter-agent distance in the VAE latent space and the ranking of source candidates (TL-aided MADRL, IV-B).

Every sample x_n of agent i (``samples.py``) has the posterior q(z | x_n) = N(mu_n, diag(sigma_n^2)) under the one
general VAE trained on all candidates and the target (``fit_general_vae``). The paper's distance (eq. 7) is the
mean KL over all pairs of samples of source i and target j. Its Lemma 1: for Gaussians whose variances all equal a
tiny constant c, KL(N(mu_1, cI) || N(mu_2, cI)) = ||mu_1 - mu_2||^2 / (2c), proportional to the squared distance of
the means; the paper observes tiny posterior variances and picks the source (eq. 10) by latent means.

Two methods here:
- ``"mean"`` (default, Lemma 1): D(i, j) = ||m_i - m_j||^2 with m_i = mean_n mu_n, the agent's mean latent mean.
  (The mean over pairs of ||mu_n - mu_m||^2 is this plus the two agents' latent spreads tr Cov(mu), the same for
  every source up to the source's own spread; we use the distance of the means, as the brief asks.)
- ``"kl"``: the closed-form KL between the agents' aggregate latent Gaussians, each the moment-matched diagonal
  Gaussian of the mixture (1/N_i) sum_n N(mu_n, diag sigma_n^2): mean m_i, variance v_i = mean_n sigma_n^2 + Var_n mu_n.
  D(i, j) = KL(N(m_j, v_j) || N(m_i, v_i)) = 1/2 sum_d [v_j/v_i + (m_i - m_j)^2/v_i - 1 + log(v_i/v_j)], target j
  first: how badly the source's distribution explains the target's samples. This replaces eq. 7's mean over
  sample pairs (O(N_i N_j)) by one KL between two Gaussians; with equal tiny variances both reduce to Lemma 1.

``rank_sources`` returns (source, distance) sorted ascending (ties by name): the first is the one to transfer from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from slicing.models.vae import Vae, VaeConfig, VaeReport, train_vae
from slicing.transfer.samples import AgentSamples

METHODS = ("mean", "kl")
_VAR_FLOOR = 1e-12

SampleSet = AgentSamples | np.ndarray


@dataclass(frozen=True)
class LatentSummary:
    """An agent's samples seen through the VAE encoder."""

    mean: np.ndarray  # [L] mean over samples of mu_n
    var: np.ndarray  # [L] variance of the moment-matched aggregate Gaussian
    posterior_var: np.ndarray  # [L] mean over samples of sigma_n^2 (Lemma 1 assumes it tiny)
    count: int


def _data(agent: str, value: SampleSet) -> np.ndarray:
    data = value.data if isinstance(value, AgentSamples) else np.asarray(value)
    if data.size == 0 and data.ndim < 2:
        return np.zeros((0, 0))  # no samples at all (e.g. an empty list)
    if data.ndim != 2:
        raise ValueError(f"agent {agent!r}: samples must be a 2-D array [n, obs_dim + 1], got shape {data.shape}")
    return data


def _check_agents(samples_by_agent: Mapping[str, SampleSet], target: str, sources: Sequence[str] | None,
                  in_dim: int | None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Validated arrays and the source names; errors name the agent and the rule."""
    known = sorted(samples_by_agent)
    if target not in samples_by_agent:
        raise ValueError(f"target: unknown agent {target!r}; agents with samples: {known}")
    names = sorted(set(known) - {target}) if sources is None else list(dict.fromkeys(sources))
    unknown = [s for s in names if s not in samples_by_agent]
    if unknown:
        raise ValueError(f"sources: unknown agents {unknown}; agents with samples: {known}")
    if target in names:
        raise ValueError(f"sources: the target {target!r} cannot be its own source")
    if not names:
        raise ValueError(f"sources: no candidate source besides the target {target!r}")
    arrays = {a: _data(a, samples_by_agent[a]) for a in [target, *names]}
    if len(arrays[target]) == 0:
        raise ValueError(f"target {target!r} has no samples; collect samples under the default action first")
    expected = arrays[target].shape[1] if in_dim is None else in_dim
    rule = "the VAE's input" if in_dim is not None else f"the target {target!r}"
    for agent, data in arrays.items():
        if data.shape[1] != expected:
            raise ValueError(f"agent {agent!r}: samples have {data.shape[1]} columns (obs_dim + 1) but {rule} has "
                             f"{expected}; observation spaces must match (same slice catalogue)")
        if len(data) == 0:
            raise ValueError(f"source {agent!r} has no samples; collect samples under the default action first")
        if not np.isfinite(data).all():
            raise ValueError(f"agent {agent!r}: samples must be finite")
    return arrays, names


def latent_posteriors(vae: Vae, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each float64 ``[n, L]``, of raw samples ``[n, in_dim]``."""
    with torch.inference_mode():
        mu, logvar = vae.encode(samples)
    return mu.double().numpy(), logvar.double().numpy()


def summarise(mu: np.ndarray, logvar: np.ndarray) -> LatentSummary:
    """Moment-matched aggregate Gaussian of the posteriors N(mu_n, diag exp(logvar_n)), ``mu, logvar [n, L]``."""
    post_var = np.exp(logvar).mean(axis=0)  # [L]
    return LatentSummary(mean=mu.mean(axis=0), var=post_var + mu.var(axis=0), posterior_var=post_var,
                         count=len(mu))


def latent_summary(vae: Vae, samples: SampleSet, agent: str = "agent") -> LatentSummary:
    return summarise(*latent_posteriors(vae, _data(agent, samples)))


def gaussian_kl(mean_p: np.ndarray, var_p: np.ndarray, mean_q: np.ndarray, var_q: np.ndarray) -> float:
    """KL(N(mean_p, diag var_p) || N(mean_q, diag var_q)) in closed form (nats)."""
    vp = np.maximum(np.asarray(var_p, dtype=np.float64), _VAR_FLOOR)
    vq = np.maximum(np.asarray(var_q, dtype=np.float64), _VAR_FLOOR)
    diff = np.asarray(mean_q, dtype=np.float64) - np.asarray(mean_p, dtype=np.float64)
    return float(0.5 * np.sum(vp / vq + diff**2 / vq - 1.0 + np.log(vq / vp)))


def distance(source: LatentSummary, target: LatentSummary, method: str = "mean") -> float:
    """D(source, target): ``"mean"`` = ||m_s - m_t||^2, ``"kl"`` = KL(target aggregate || source aggregate)."""
    if method == "mean":
        return float(np.sum((source.mean - target.mean) ** 2))
    if method == "kl":
        return gaussian_kl(target.mean, target.var, source.mean, source.var)
    raise ValueError(f"method: {method!r}; choose from {list(METHODS)}")


def fit_general_vae(samples_by_agent: Mapping[str, SampleSet], cfg: VaeConfig | None = None, seed: int = 0
                    ) -> tuple[Vae, VaeReport]:
    """One VAE on the stacked samples of every agent (sorted by name, so the result does not depend on the
    mapping's order). All agents must have the same number of columns."""
    if not samples_by_agent:
        raise ValueError("samples_by_agent: no agents")
    arrays = {a: _data(a, samples_by_agent[a]) for a in sorted(samples_by_agent)}
    first = next(iter(arrays))
    for agent, data in arrays.items():
        if data.shape[1] != arrays[first].shape[1]:
            raise ValueError(f"agent {agent!r}: samples have {data.shape[1]} columns but agent {first!r} has "
                             f"{arrays[first].shape[1]}; observation spaces must match (same slice catalogue)")
    return train_vae(np.concatenate(list(arrays.values())), cfg, seed)


def rank_sources(samples_by_agent: Mapping[str, SampleSet], target: str, vae: Vae, method: str = "mean",
                 sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """Source candidates (default: every agent but the target) sorted by their distance to ``target``."""
    if method not in METHODS:
        raise ValueError(f"method: {method!r}; choose from {list(METHODS)}")
    arrays, names = _check_agents(samples_by_agent, target, sources, vae.in_dim)
    summary = {a: summarise(*latent_posteriors(vae, data)) for a, data in arrays.items()}
    ranked = [(s, distance(summary[s], summary[target], method)) for s in names]
    return sorted(ranked, key=lambda item: (item[1], item[0]))
