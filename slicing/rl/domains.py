"""Per-domain agents (paper 003, section V-B: distributed DRL over SLA-decomposed targets) with RLlib multi-agent PPO.

The paper splits an e2e slice's SLA into per-domain targets and lets one DRL agent per domain allocate that domain's
resource. Here, per e2e slice and interval (one decision = one episode, as in ``slicing.rl.cadrl``):

- the SLA (latency budget, reliability, throughput) is decomposed by ``slicing.optim.sla.decompose``; the transport
  target is a floor on the slice's bandwidth, the core/compute target a floor on its CPU;
- agent ``transport`` allocates the bandwidth in [floor, 50 Mbit/s], agent ``compute`` the CPU in
  [floor, 4,500 mc] (the e2e simulator's CPU is the gNB/edge-and-UPF processing the decomposition's RAN+edge and
  core+cloud capacities are met by); each sees the slice's traffic centre, the thresholds and its own domain's floor;
- both get the same team reward (their shared experience), ``cadrl.barrier_reward``: minus the slice's normalised
  resource plus the log barrier of E[beta] <= beta_thresh on the learnt slice model.

Weaker than the paper's three agents: the ground-truth e2e simulator has two resources (bandwidth, CPU), so there
are two learning agents; the radio share stays with the IDLA layer, which receives the RAN latency target as the
cells' per-slice delay requirement (``docs/microopt.md``).

The training family: traffic centre uniform in [1, 5] users/s with std one of ``CadrlSettings.stds``; q_thresh in
{3, 4, 5}, beta_thresh in {0.1, 0.2, 0.3}; SLA latency uniform in [20, 100] ms, reliability in {0.99, 0.999,
0.9999}, throughput = centre x q_thresh (every user at the QoS threshold). ``domain_slices`` draws the same family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from slicing.models.slice_model import ETA, R_MAX, load_slice_model
from slicing.optim.degradation import model_e_beta
from slicing.optim.microopt import traffic_points
from slicing.optim.sla import decompose
from slicing.rl.cadrl import BETA_CHOICES, Q_CHOICES, TRAFFIC_RANGE, CadrlSettings, barrier_reward

AGENTS = ("transport", "compute")  # agent -> index of its resource in r = (bandwidth, cpu)
RELIABILITY = (0.99, 0.999, 0.9999)
LATENCY_MS = (20.0, 100.0)

Progress = Callable[[str, int, int], None]


@dataclass
class DomainSlices:
    """A batch of e2e slices with SLAs: traffic [I, T], centres/stds [I], thresholds [I], floors r_min [I, 2]."""

    traffic: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    q_thresh: np.ndarray
    beta_thresh: np.ndarray
    latency_ms: np.ndarray
    reliability: np.ndarray
    throughput_mbps: np.ndarray
    r_min: np.ndarray

    def __len__(self) -> int:
        return len(self.mean)


def domain_slices(n: int, rng: np.random.Generator, slots: int, stds: tuple[float, ...]) -> DomainSlices:
    """``n`` slices of the training family whose SLAs decompose within the domains' caps (redrawn until they do)."""
    parts: list[DomainSlices] = []
    have = 0
    while have < n:
        m = max(2 * (n - have), 8)
        mean = rng.uniform(*TRAFFIC_RANGE, m)
        std = rng.choice(np.asarray(stds, dtype=np.float64), m)
        q = rng.choice(np.asarray(Q_CHOICES), m)
        b = rng.choice(np.asarray(BETA_CHOICES), m)
        lat = rng.uniform(*LATENCY_MS, m)
        rel = rng.choice(np.asarray(RELIABILITY), m)
        tput = mean * q
        dec = decompose(lat, rel, tput)
        r_min = np.stack([dec.transport_mbps, dec.cpu_millicores], axis=1)
        ok = dec.feasible & (r_min <= np.asarray(R_MAX)).all(axis=1)
        k = np.flatnonzero(ok)[: n - have]
        x = np.where(std[k, None] == 0, mean[k, None],
                     traffic_points(mean[k], np.maximum(std[k], 1e-9), *TRAFFIC_RANGE, slots))
        parts.append(DomainSlices(x, mean[k], std[k], q[k], b[k], lat[k], rel[k], tput[k], r_min[k]))
        have += len(k)
    return DomainSlices(*(np.concatenate([getattr(p, f) for p in parts]) for f in DomainSlices.__dataclass_fields__))


def agent_obs(sl: DomainSlices, d: int) -> np.ndarray:
    """[I, 4] float32 observation of domain agent ``d``: centre / 5, q / 5, beta / 0.3, own floor / r_max."""
    return np.stack([sl.mean / 5.0, sl.q_thresh / 5.0, sl.beta_thresh / 0.3, sl.r_min[:, d] / R_MAX[d]],
                    axis=-1).astype(np.float32)


def agent_r(a: np.ndarray, r_min: np.ndarray, d: int) -> np.ndarray:
    """Action in [-1, 1] -> domain d's allocation in [floor, r_max]."""
    u = (np.clip(np.asarray(a, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    return r_min + u * (R_MAX[d] - r_min)


def _import_multi_agent_env():
    from ray.rllib.env.multi_agent_env import MultiAgentEnv

    return MultiAgentEnv


class _Lazy:
    """``DomainEnv`` subclasses RLlib's MultiAgentEnv, imported on first use (this module loads without Ray)."""

    cls: type | None = None


def domain_env_class() -> type:
    if _Lazy.cls is not None:
        return _Lazy.cls
    base = _import_multi_agent_env()

    class DomainEnv(base):  # type: ignore[misc, valid-type]
        """One e2e slice per episode; agents ``transport`` and ``compute`` act once, with the team reward."""

        def __init__(self, config: dict[str, Any] | None = None) -> None:
            super().__init__()
            c = dict(config or {})
            self.model = load_slice_model(c["model_path"])
            self.model.eval()
            self.slots, self.stds = int(c.get("slots", 60)), tuple(c.get("stds", (0.0, 0.5, 1.5)))
            self.t, self.floor, self.penalty = (float(c.get("barrier_t", 20.0)), float(c.get("barrier_floor", 1e-3)),
                                                float(c.get("penalty", 2.0)))
            self.rng = np.random.default_rng(int(c.get("seed", 0)))
            # a pool drawn once (the decomposition's nested bisections cost ~0.1 s per call, whatever its size)
            self.pool = domain_slices(int(c.get("pool", 4096)), self.rng, self.slots, self.stds)
            self.agents = self.possible_agents = list(AGENTS)
            self.observation_spaces = {a: gym.spaces.Box(0.0, 2.0, (4,), np.float32) for a in AGENTS}
            self.action_spaces = {a: gym.spaces.Box(-1.0, 1.0, (1,), np.float32) for a in AGENTS}
            self.slice: DomainSlices | None = None

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            k = int(self.rng.integers(len(self.pool)))
            self.slice = DomainSlices(*(getattr(self.pool, f)[k:k + 1] for f in DomainSlices.__dataclass_fields__))
            return {a: agent_obs(self.slice, d)[0] for d, a in enumerate(AGENTS)}, {}

        def step(self, action_dict):
            sl = self.slice
            assert sl is not None, "step() before reset()"
            r = np.array([agent_r(np.ravel(action_dict[a])[0], sl.r_min[0, d], d) for d, a in enumerate(AGENTS)])
            e_beta = model_e_beta(self.model.qos, sl.traffic, r[None, :], sl.q_thresh)[0]
            reward = float(barrier_reward(r @ np.asarray(ETA), e_beta, sl.beta_thresh[0], self.t, self.floor,
                                          self.penalty))
            obs = {a: agent_obs(sl, d)[0] for d, a in enumerate(AGENTS)}
            done = dict.fromkeys(AGENTS, True) | {"__all__": True}
            trunc = dict.fromkeys(AGENTS, False) | {"__all__": False}
            return obs, dict.fromkeys(AGENTS, reward), done, trunc, {a: {"e_beta": float(e_beta)} for a in AGENTS}

    _Lazy.cls = DomainEnv
    return DomainEnv


@dataclass
class DomainPolicy:
    """The two trained domain agents as one allocator."""

    modules: dict[str, Any]
    history: list[dict[str, float]]
    path: str

    def allocate(self, sl: DomainSlices) -> np.ndarray:
        """r [I, 2] (bandwidth, cpu): each domain agent's deterministic action over its floor."""
        from ray.rllib.core.columns import Columns

        r = np.empty((len(sl), len(AGENTS)))
        with torch.no_grad():
            for d, a in enumerate(AGENTS):
                module = self.modules[a]
                fwd = module.forward_inference({Columns.OBS: torch.from_numpy(agent_obs(sl, d))})
                dist = module.get_inference_action_dist_cls().from_logits(fwd[Columns.ACTION_DIST_INPUTS])
                r[:, d] = agent_r(dist.to_deterministic().sample().cpu().numpy()[:, 0], sl.r_min[:, d], d)
        return r


def _agent_to_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    return agent_id


def train_domain_agents(model_path: str, s: CadrlSettings, out: Path, progress: Progress | None = None) -> DomainPolicy:
    """Multi-agent PPO: one module per domain, trained together on the team reward; saved under ``out``."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec

    from slicing.rl.train import require_ray
    from slicing.threads import single_torch_thread

    require_ray()
    env_config = {"model_path": str(model_path), "slots": s.slots, "stds": list(s.stds), "seed": s.seed,
                  "barrier_t": s.barrier_t, "barrier_floor": s.barrier_floor, "penalty": s.penalty}
    config = (
        PPOConfig()
        .environment(domain_env_class(), env_config=env_config, disable_env_checking=True)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .multi_agent(policies=set(AGENTS), policy_mapping_fn=_agent_to_module, count_steps_by="env_steps")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={a: RLModuleSpec() for a in AGENTS}),
                   model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden), fcnet_activation="tanh"))
        .training(train_batch_size_per_learner=s.batch, minibatch_size=min(s.minibatch, s.batch),
                  num_epochs=s.epochs, lr=s.lr, gamma=0.0, lambda_=1.0, entropy_coeff=s.entropy_coeff)
        .reporting(min_time_s_per_iteration=0)
        .debugging(seed=s.seed, log_level="ERROR")
    )
    history: list[dict[str, float]] = []
    with single_torch_thread():
        algo = config.build_algo()
        try:
            for i in range(s.iterations):
                result = algo.train()
                reward = result.get("env_runners", {}).get("episode_return_mean")
                # the episode return sums both agents' (equal) team rewards
                history.append({"iteration": i + 1,
                                "reward": float("nan") if reward is None else float(reward) / len(AGENTS)})
                if progress:
                    progress("domain agents", i + 1, s.iterations)
            out.mkdir(parents=True, exist_ok=True)
            path = algo.save_to_path(str(out.resolve()))
        finally:
            algo.stop()
    base = Path(path) / "learner_group" / "learner" / "rl_module"
    modules = {a: RLModule.from_checkpoint(str((base / a).resolve())) for a in AGENTS}
    for m in modules.values():
        m.eval()
    return DomainPolicy(modules, history, str(path))
