"""Source ranking by VAE latent distance (slicing/transfer/ranking.py): cluster order, the KL method against its
closed form, and errors that name the agent and the rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.models.vae import Vae
from slicing.transfer.ranking import (
    distance,
    fit_general_vae,
    gaussian_kl,
    latent_summary,
    rank_sources,
    summarise,
)
from tests.models.helpers import SMALL_VAE as SMALL
from tests.models.helpers import clusters


@pytest.mark.parametrize("method", ["mean", "kl"])
def test_ranking_three_clusters(method):
    """Target drawn from cluster A: the other A agent ranks first, the far cluster C last."""
    agents = clusters(150, {"target": 0.0, "near": 0.0, "mid": 2.0, "far": 6.0}, seed=2)
    vae, _ = fit_general_vae(agents, SMALL, seed=0)
    ranked = rank_sources(agents, "target", vae, method)
    assert [name for name, _ in ranked] == ["near", "mid", "far"], ranked
    dists = [d for _, d in ranked]
    assert dists == sorted(dists) and dists[0] >= 0
    assert rank_sources(agents, "target", vae, method, sources=["far", "near"])[0][0] == "near"


def _identity_vae(logvar: float) -> Vae:
    """in_dim = latent = 1: mu(x) = x for x >= 0 through the ReLU layers, log sigma^2 = ``logvar``."""
    vae = Vae(1, hidden=(2, 2), latent_dim=1)
    with torch.no_grad():
        for layer in [m for m in vae.encoder if isinstance(m, torch.nn.Linear)]:
            layer.weight.zero_()
            layer.bias.zero_()
        vae.encoder[0].weight[0, 0] = 1.0
        vae.encoder[2].weight[0, 0] = 1.0
        vae.encoder[4].weight[0, 0] = 1.0  # mu = h
        vae.encoder[4].bias[1] = logvar
    return vae


def test_kl_method_equals_closed_form_by_hand():
    assert gaussian_kl([0.0], [1.0], [1.0], [2.0]) == pytest.approx(0.5 * np.log(2.0))
    s = summarise(np.array([[0.0], [2.0]]), np.log(np.array([[1.0], [1.0]])))
    assert s.mean == pytest.approx([1.0]) and s.var == pytest.approx([2.0]) and s.posterior_var == pytest.approx([1.0])
    vae = _identity_vae(np.log(0.5))
    agents = {"t": np.array([[1.0], [3.0]]), "s1": np.array([[0.0], [2.0]]),
              "s2": np.array([[2.0], [2.0], [6.0], [6.0]])}
    # target N(2, 1 + 0.5); s1 N(1, 1.5); s2 N(4, 4 + 0.5)
    kl = dict(rank_sources(agents, "t", vae, "kl"))
    assert kl["s1"] == pytest.approx(0.5 * (1.0 / 1.5))
    assert kl["s2"] == pytest.approx(0.5 * (1.5 / 4.5 + 4.0 / 4.5 - 1.0 + np.log(3.0)))
    assert dict(rank_sources(agents, "t", vae, "mean")) == pytest.approx({"s1": 1.0, "s2": 4.0})
    assert distance(latent_summary(vae, agents["s1"]), latent_summary(vae, agents["t"]), "kl") == kl["s1"]


def test_ranking_errors_name_agent_and_rule():
    vae = _identity_vae(0.0)
    ok = {"t": np.ones((3, 1)), "s": np.ones((2, 1))}
    with pytest.raises(ValueError, match="target: unknown agent 'x'"):
        rank_sources(ok, "x", vae)
    with pytest.raises(ValueError, match=r"sources: unknown agents \['nope'\]"):
        rank_sources(ok, "t", vae, sources=["nope"])
    with pytest.raises(ValueError, match="target 't' has no samples"):
        rank_sources({"t": np.zeros((0, 1)), "s": np.ones((2, 1))}, "t", vae)
    with pytest.raises(ValueError, match="target 't' has no samples"):
        rank_sources({"t": [], "s": np.ones((2, 1))}, "t", vae)
    with pytest.raises(ValueError, match="agent 's': samples have 2 columns.*observation spaces must match"):
        rank_sources({"t": np.ones((3, 1)), "s": np.ones((2, 2))}, "t", vae)
    with pytest.raises(ValueError, match="no candidate source"):
        rank_sources({"t": np.ones((3, 1))}, "t", vae)
    with pytest.raises(ValueError, match="method: 'cosine'"):
        rank_sources(ok, "t", vae, "cosine")
    with pytest.raises(ValueError, match="agent 'b': samples have 3 columns but agent 'a' has 2"):
        fit_general_vae({"a": np.ones((4, 2)), "b": np.ones((4, 3))})
