"""Transfer foundation: default-action samples, the general VAE (training, persistence) and the source ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slicing.data.features import obs_dim, shares_to_action
from slicing.models.vae import Vae, VaeConfig, VaeFileError, load_vae, save_vae, train_vae, weights_version
from slicing.rl.env import CellSlicingEnv
from slicing.rl.transfer_samples import collect_default_samples, collect_for_agents
from slicing.transfer.ranking import (
    distance,
    fit_general_vae,
    gaussian_kl,
    latent_summary,
    rank_sources,
    summarise,
)

SMALL = VaeConfig(hidden=(32, 16), latent_dim=4, epochs=30, batch_size=128)

# ------------------------------------------------------------------------------------------------ samples


def test_samples_shapes_stats_and_determinism(idla_scenario):
    kw = {"episodes": 2, "episode_len": 8, "seed": 3}
    a = collect_default_samples(idla_scenario, [2, 0, 1], name="src", **kw)
    b = collect_default_samples(idla_scenario, [0, 1, 2], name="src", **kw)
    d = obs_dim(len(idla_scenario.slices))
    assert a.data.shape == (2 * 8 * 3, d + 1) and a.data.dtype == np.float32
    np.testing.assert_array_equal(a.data, b.data)  # same seed (cell order irrelevant) -> same samples
    assert a.stats.cells == (0, 1, 2) and a.stats.count == 48 and a.stats.obs_dim == d
    np.testing.assert_allclose(a.stats.mean, a.data.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.stats.std, a.data.std(axis=0), rtol=1e-4, atol=1e-6)
    assert np.all((a.rewards >= 0) & (a.rewards <= 1))
    other = collect_default_samples(idla_scenario, [0, 1, 2], episodes=2, episode_len=8, seed=4)
    assert not np.array_equal(a.data, other.data)
    # the dict form gives each agent exactly what a single collection gives
    both = collect_for_agents(idla_scenario, {"src": [0, 1, 2], "tgt": [7]}, **kw)
    np.testing.assert_array_equal(both["src"].data, a.data)
    assert both["tgt"].data.shape == (16, d + 1) and both["tgt"].name == "tgt"


def test_samples_are_the_default_action(idla_scenario):
    """Rewards and states equal those of stepping the env with equal shares over the active slices."""
    cells, seed, steps = [4, 5, 9], 11, 6
    samples = collect_default_samples(idla_scenario, cells, episode_len=steps, seed=seed)
    env = CellSlicingEnv({"scenario": idla_scenario, "cell_ids": cells, "seed": seed, "episode_len": steps})
    obs, _ = env.reset(seed=seed)
    rows = samples.data.reshape(steps, len(cells), -1)  # [T, N, obs_dim + 1]
    for t in range(steps):
        mask = env.region_mask()
        equal = mask / mask.sum(axis=1, keepdims=True)  # [N, S]
        np.testing.assert_array_equal(rows[t, :, :-1], np.stack([obs[a] for a in env.possible_agents]))
        acts = shares_to_action(equal, mask)
        obs, rew, *_ = env.step({a: acts[i] for i, a in enumerate(env.possible_agents)})
        np.testing.assert_allclose(env._report.share[env._rows], equal, atol=1e-12)
        np.testing.assert_allclose(rows[t, :, -1], [rew[a] for a in env.possible_agents], rtol=1e-6)
    # ... and they are not what the traffic-proportional baseline would give
    env.reset(seed=seed)
    base = []
    for _ in range(steps):
        acts = shares_to_action(env.baseline_shares(), env.region_mask())
        _, rew, *_ = env.step({a: acts[i] for i, a in enumerate(env.possible_agents)})
        base.append([rew[a] for a in env.possible_agents])
    assert not np.allclose(np.array(base), rows[:, :, -1])


def test_sample_errors_name_agent_and_rule(idla_scenario):
    with pytest.raises(ValueError, match="agent 'far'.*within \\[0, 12\\)"):
        collect_for_agents(idla_scenario, {"far": [3, 99]}, episode_len=2)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        collect_default_samples(idla_scenario, [0], episodes=0)
    with pytest.raises(ValueError, match="agent 'empty'.*at least one cell"):
        collect_for_agents(idla_scenario, {"empty": []}, episode_len=2)
    with pytest.raises(ValueError, match="groups"):
        collect_for_agents(idla_scenario, {})


# ---------------------------------------------------------------------------------------------------- VAE


def clusters(n: int, centres: dict[str, float], seed: int, dim: int = 21) -> dict[str, np.ndarray]:
    """Gaussian clusters along one direction: agent -> [n, dim] samples centred at c * u, noise std 0.3."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=dim)
    u /= np.linalg.norm(u)
    return {a: (c * u + 0.3 * rng.normal(size=(n, dim))).astype(np.float32) for a, c in centres.items()}


def test_vae_trains_deterministically_and_restores_threads():
    rng = np.random.default_rng(0)  # 2-D structure in 21 columns: a 4-D latent can reconstruct it
    data = (rng.normal(size=(400, 2)) @ rng.normal(size=(2, 21)) + 0.05 * rng.normal(size=(400, 21))).astype(np.float32)
    threads = torch.get_num_threads()
    vae, rep = train_vae(data, SMALL, seed=5)
    assert torch.get_num_threads() == threads
    assert len(rep.losses) == SMALL.epochs and rep.samples == 400
    assert rep.losses[-1] < 0.5 * rep.losses[0], rep.losses
    assert rep.recon < 0.25 * 21  # well below predicting the mean of the 21 standardised columns
    again, rep2 = train_vae(data, SMALL, seed=5)
    assert rep2.losses == rep.losses and weights_version(again) == weights_version(vae)
    mu, logvar = vae.encode(data[:7])
    assert mu.shape == logvar.shape == (7, SMALL.latent_dim)
    with pytest.raises(ValueError, match=r"\[n, 21\]"):
        vae.encode(data[:3, :20])


def test_vae_save_load_round_trip_and_file_errors(tmp_path: Path):
    data = np.concatenate(list(clusters(100, {"a": 0.0, "b": 3.0}, seed=1).values()))
    vae, _ = train_vae(data, SMALL.model_copy(update={"epochs": 3}), seed=0)
    version = save_vae(vae, tmp_path / "vae.pt")
    loaded = load_vae(tmp_path / "vae.pt")
    assert loaded.version == version == vae.version and len(version) == 12
    with torch.inference_mode():
        for got, want in zip(loaded.encode(data), vae.encode(data), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    payload = torch.load(tmp_path / "vae.pt", weights_only=True)
    payload["state_dict"]["feat_mean"] = payload["state_dict"]["feat_mean"] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(VaeFileError, match="does not match its weights"):
        load_vae(tmp_path / "tampered.pt")
    payload["latent_dim"] = 5
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(VaeFileError, match="weights do not match"):
        load_vae(tmp_path / "shape.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(VaeFileError, match="not a readable torch file"):
        load_vae(tmp_path / "junk.pt")
    with pytest.raises(VaeFileError, match="does not exist"):
        load_vae(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------------------------- ranking


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
