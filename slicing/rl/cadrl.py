"""CaDRL and CaDRL+ (MicroOpt paper's constrained-DRL baselines) with RLlib PPO on the slice model.

The paper implements Liu et al.'s CaDRL: Interior-point Policy Optimization (IPO), i.e. PPO on a reward that adds
a logarithmic barrier of the constraint. Here one decision is one episode (a contextual bandit): the agent sees a
slice's context, chooses r = (bandwidth, CPU) once for the interval, and gets

    reward = -eta^T r + barrier(E[beta]),
    barrier = ln(max(slack / beta_thresh, floor)) / t          if slack = beta_thresh - E[beta] > 0,
              ln(floor) / t - penalty * (-slack) / beta_thresh   otherwise,

with E[beta] exact on the learnt slice model (``degradation.strict_e_beta``, no sampling) for the interval's traffic
points. IPO's barrier is -inf at the boundary; the floor and the linear penalty beyond it keep PPO's advantages
finite (IPO's own implementation clips the same way).

- **CaDRL** is trained once "over randomised traffic" (the paper, after Sulaiman et al.): every episode draws a
  traffic distribution (centre uniform in [1, 5] users/s, std one of 0, sigma_mean, sigma_max) and thresholds
  (q_thresh in {3, 4, 5}, beta_thresh in {0.1, 0.2, 0.3}); it observes the centre and the thresholds, not the
  spread, so it learns the allocation that is safe over the family (the paper: it "converges to the worst case").
- **CaDRL+** is trained from scratch for one predicted distribution and one threshold pair (its observation is
  constant), the paper's "train quickly on the slice model once the traffic is predicted".

The action is a Box [-1, 1]^K mapped to r = (a + 1) / 2 * r_max; inference takes the Gaussian mean, clipped.
The RL side is RLlib's (``PPOConfig``, one local env runner, ``num_envs_per_env_runner`` vectorised copies); the
env evaluates the slice model in torch (one thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from slicing.config import Strict
from slicing.models.slice_model import ETA, R_MAX, load_slice_model
from slicing.optim.degradation import model_e_beta
from slicing.optim.microopt import traffic_points

Q_CHOICES = (3.0, 4.0, 5.0)
BETA_CHOICES = (0.1, 0.2, 0.3)
TRAFFIC_RANGE = (1.0, 5.0)
MODULES_DIR = ("learner_group", "learner", "rl_module", "default_policy")

Progress = Callable[[str, int, int], None]


class CadrlSettings(Strict):
    """PPO budget and the barrier of CaDRL / CaDRL+."""

    iterations: int = Field(default=100, ge=1, le=100_000, description="PPO training iterations")
    batch: int = Field(default=2048, ge=64, le=1_000_000, description="episodes (= decisions) per iteration")
    minibatch: int = Field(default=256, ge=16, le=1_000_000)
    epochs: int = Field(default=8, ge=1, le=100, description="SGD passes over each batch")
    lr: float = Field(default=1e-3, gt=0, le=1)
    entropy_coeff: float = Field(default=0.0, ge=0, le=1)
    hidden: tuple[int, ...] = Field(default=(64, 64), min_length=1)
    barrier_t: float = Field(default=20.0, gt=0, le=1e6, description="IPO's t: the barrier is ln(slack)/t")
    barrier_floor: float = Field(default=1e-3, gt=0, lt=1, description="slack/beta_thresh floor of the log")
    penalty: float = Field(default=2.0, ge=0, le=1e6, description="linear penalty per unit of relative excess")
    slots: int = Field(default=60, ge=2, le=10_000, description="traffic points of one interval")
    stds: tuple[float, ...] = Field(default=(0.0, 0.5, 1.5), min_length=1,
                                    description="traffic stds of the randomised family (CaDRL)")
    envs: int = Field(default=8, ge=1, le=256, description="vectorised env copies in the env runner")
    seed: int = Field(default=0, ge=0, lt=2**31)


class CadrlEnvConfig(Strict):
    """The env's config (RLlib hands it over as a dict)."""

    model_path: str
    slots: int = 60
    stds: tuple[float, ...] = (0.0, 0.5, 1.5)
    traffic: list[float] | None = None  # CaDRL+: the one predicted distribution's points
    q_thresh: float | None = None  # CaDRL+: the one threshold pair
    beta_thresh: float | None = None
    barrier_t: float = 20.0
    barrier_floor: float = 1e-3
    penalty: float = 2.0
    seed: int = 0


def barrier_reward(norm: np.ndarray, e_beta: np.ndarray, beta_thresh: np.ndarray, t: float, floor: float,
                   penalty: float) -> np.ndarray:
    """-eta^T r plus IPO's clipped log barrier of E[beta] <= beta_thresh (see the module doc)."""
    slack = (np.asarray(beta_thresh) - np.asarray(e_beta)) / np.asarray(beta_thresh)
    inside = np.log(np.clip(slack, floor, 1.0)) / t
    outside = np.log(floor) / t - penalty * np.maximum(-slack, 0.0)
    return -np.asarray(norm) + np.where(slack > 0, inside, outside)


def observation(mean: np.ndarray, q_thresh: np.ndarray, beta_thresh: np.ndarray) -> np.ndarray:
    """[I, 3] float32: traffic centre / 5, q_thresh / 5, beta_thresh / 0.3 (all about [0, 1])."""
    return np.stack([np.asarray(mean) / 5.0, np.asarray(q_thresh) / 5.0, np.asarray(beta_thresh) / 0.3],
                    axis=-1).astype(np.float32)


def action_to_r(a: np.ndarray) -> np.ndarray:
    """[.., K] actions in [-1, 1] -> allocations in [0, r_max]."""
    return (np.clip(np.asarray(a, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0 * np.asarray(R_MAX)


class SliceAllocEnv(gym.Env):
    """One e2e slice, one decision per episode; reward from the slice model (see the module doc)."""

    metadata: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.cfg = CadrlEnvConfig.model_validate(config or {})
        self.model = load_slice_model(self.cfg.model_path)
        self.model.eval()
        self.observation_space = gym.spaces.Box(0.0, 2.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (len(R_MAX),), np.float32)
        self._rng = np.random.default_rng(self.cfg.seed)
        self._context: tuple[np.ndarray, float, float] | None = None
        self.last_e_beta = float("nan")

    def _draw(self) -> tuple[np.ndarray, float, float, float]:
        c = self.cfg
        if c.traffic is not None:
            x = np.asarray(c.traffic, dtype=np.float64)
            return x, float(x.mean()), float(c.q_thresh), float(c.beta_thresh)
        mean = float(self._rng.uniform(*TRAFFIC_RANGE))
        std = float(self._rng.choice(c.stds))
        x = (np.full(c.slots, mean) if std == 0 else
             traffic_points(np.array([mean]), np.array([std]), *TRAFFIC_RANGE, c.slots)[0])
        return x, mean, float(self._rng.choice(Q_CHOICES)), float(self._rng.choice(BETA_CHOICES))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        x, mean, q, b = self._draw()
        self._context = (x, q, b)
        return observation(np.array(mean), np.array(q), np.array(b)), {}

    def step(self, action):
        assert self._context is not None, "step() before reset()"
        x, q, b = self._context
        r = action_to_r(action)
        e_beta = float(model_e_beta(self.model.qos, x[None, :], r[None, :], q)[0])
        self.last_e_beta = e_beta
        c = self.cfg
        reward = float(barrier_reward(r @ np.asarray(ETA), e_beta, b, c.barrier_t, c.barrier_floor, c.penalty))
        obs = observation(np.array(x.mean()), np.array(q), np.array(b))
        return obs, reward, True, False, {"e_beta": e_beta}


@dataclass
class CadrlPolicy:
    """The trained RLModule of CaDRL / CaDRL+ as an allocator."""

    module: Any
    history: list[dict[str, float]]
    path: str

    @classmethod
    def from_checkpoint(cls, path: str | Path, history: list[dict[str, float]] | None = None) -> CadrlPolicy:
        from ray.rllib.core.rl_module.rl_module import RLModule

        module = RLModule.from_checkpoint(str(Path(path).joinpath(*MODULES_DIR).resolve()))
        module.eval()
        return cls(module, history or [], str(path))

    def allocate(self, traffic: np.ndarray, q_thresh: np.ndarray, beta_thresh: np.ndarray) -> CadrlResult:
        """r [I, K] for traffic rows [I, T] (the agent sees each row's mean) and thresholds [I]."""
        from ray.rllib.core.columns import Columns

        x = np.asarray(traffic, dtype=np.float64)
        obs = observation(x.mean(axis=1), np.broadcast_to(q_thresh, (len(x),)),
                          np.broadcast_to(beta_thresh, (len(x),)))
        with torch.no_grad():
            fwd = self.module.forward_inference({Columns.OBS: torch.from_numpy(obs)})
            dist = self.module.get_inference_action_dist_cls().from_logits(fwd[Columns.ACTION_DIST_INPUTS])
            a = dist.to_deterministic().sample().cpu().numpy()
        return CadrlResult(r=action_to_r(a))


@dataclass
class CadrlResult:
    r: np.ndarray  # [I, K]


def build_cadrl_config(env_config: CadrlEnvConfig, s: CadrlSettings):
    """The RLlib PPOConfig of CaDRL / CaDRL+ on ``SliceAllocEnv``."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (
        PPOConfig()
        .environment(SliceAllocEnv, env_config=env_config.model_dump(mode="json"), disable_env_checking=True)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=s.envs, rollout_fragment_length="auto")
        .training(train_batch_size_per_learner=s.batch, minibatch_size=min(s.minibatch, s.batch),
                  num_epochs=s.epochs, lr=s.lr, gamma=0.0, lambda_=1.0, entropy_coeff=s.entropy_coeff)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden), fcnet_activation="tanh"))
        .reporting(min_time_s_per_iteration=0)
        .debugging(seed=s.seed, log_level="ERROR")
    )


def train_cadrl(model_path: str, s: CadrlSettings, out: Path, traffic: np.ndarray | None = None,
                thresholds: tuple[float, float] | None = None, progress: Progress | None = None,
                label: str = "CaDRL") -> CadrlPolicy:
    """Train CaDRL (``traffic`` None: the randomised family) or CaDRL+ (``traffic [1, T]`` and its
    ``thresholds`` (q, beta)); saves the algorithm under ``out`` and returns the policy with its per-iteration
    history (mean episode reward)."""
    from slicing.rl.train import require_ray
    from slicing.threads import single_torch_thread

    require_ray()
    if (traffic is None) != (thresholds is None):
        raise ValueError("traffic and thresholds: give both (CaDRL+) or neither (CaDRL)")
    env_config = CadrlEnvConfig(model_path=str(model_path), slots=s.slots, stds=s.stds, seed=s.seed,
                                barrier_t=s.barrier_t, barrier_floor=s.barrier_floor, penalty=s.penalty,
                                traffic=None if traffic is None else [float(v) for v in np.ravel(traffic)],
                                q_thresh=None if thresholds is None else float(thresholds[0]),
                                beta_thresh=None if thresholds is None else float(thresholds[1]))
    history: list[dict[str, float]] = []
    with single_torch_thread():
        algo = build_cadrl_config(env_config, s).build_algo()
        try:
            for i in range(s.iterations):
                result = algo.train()
                reward = result.get("env_runners", {}).get("episode_return_mean")
                history.append({"iteration": i + 1, "reward": float("nan") if reward is None else float(reward)})
                if progress:
                    progress(label, i + 1, s.iterations)
            out.mkdir(parents=True, exist_ok=True)
            path = algo.save_to_path(str(out.resolve()))
        finally:
            algo.stop()
    return CadrlPolicy.from_checkpoint(path, history)
