"""Algorithm 1 of paper 004 with RLlib's DQN: digital-twin-enhanced DRL, its no-twin baseline and a random policy.

phi is RLlib's ``DQNConfig`` on the new API stack: ``dqn`` (no double Q, no dueling), ``ddqn`` (double Q) or
``dueling`` (double Q + dueling heads; the paper's third agent is Dueling GAN-DDQN, whose distributional GAN part
RLlib does not have, so ours is the dueling DDQN without it). Network: the paper's 4 hidden layers (256, 256, 128,
128: three in the encoder, one in the Q head), Adam 1e-3, minibatch 32, one update per env step (RLlib's
``training_intensity``), a uniform replay buffer, epsilon-greedy exploration.

One round I (both arms spend exactly T real steps per round; only Agent 1 ever touches the real env):

1. **Agent 1** trains T steps in the real env (Algorithm 1, lines 13-19). Its transitions are the round's data
   (line 3: "collect with pi_1"; in round 1 pi_1 is epsilon = 1, i.e. random).
2. *Twin arm only*: the twin is recalibrated on every transition so far (line 4) and its fidelity recorded;
   **Agent 2**, holding theta2 = theta1 (line 20), trains Phi steps in the twin env (lines 5-11);
   then **theta1 = zeta theta1 + (1 - zeta) theta2** (eq. 8, line 12), written into Agent 1's learner and synced to
   its env runner. Agent 2 gets theta1 back at the start of the next round.

The loop is Algorithm 1 rotated by one step (data, twin, Agent 2, merge come after Agent 1's real steps rather than
before), so the twin's first calibration has data and the sample budget is T per round in both arms.
Weights include the target network (the merged Q function and its target stay consistent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slicing.models.twin import DigitalTwin, Transitions
from slicing.rl.bs_env import REAL_ENV, TWIN_ENV, BaseStationEnv, register
from slicing.rl.settings import BsEnvConfig, TwinSettings

Progress = Callable[[str, int, int], None]
Weights = dict[str, dict[str, Any]]


def soft_merge(w1: Weights, w2: Weights, zeta: float) -> Weights:
    """Eq. 8: zeta * w1 + (1 - zeta) * w2, module by module and tensor by tensor (same keys and shapes)."""
    if not 0.0 <= zeta <= 1.0:
        raise ValueError(f"zeta: must be in [0, 1], got {zeta}")
    out: Weights = {}
    for mid, p1 in w1.items():
        p2 = w2[mid]
        if set(p1) != set(p2):
            raise ValueError(f"weights of module {mid!r}: the two agents' parameter names differ")
        out[mid] = {k: zeta * np.asarray(p1[k]) + (1.0 - zeta) * np.asarray(p2[k]) for k in p1}
    return out


def dqn_config(s: TwinSettings, env_name: str, env_cfg: BsEnvConfig, seed: int, steps_per_iteration: int):
    """RLlib DQNConfig of phi (see the module doc); one ``train()`` = ``steps_per_iteration`` env steps."""
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    fragment = 4 if steps_per_iteration % 4 == 0 else 1
    return (
        DQNConfig()
        .environment(env_name, env_config=env_cfg.model_dump(mode="json"), disable_env_checking=True)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length=fragment)
        .training(lr=s.lr, gamma=s.discount, train_batch_size_per_learner=s.batch,
                  double_q=s.algo != "dqn", dueling=s.algo == "dueling", n_step=1, tau=1.0,
                  target_network_update_freq=s.target_update,
                  num_steps_sampled_before_learning_starts=s.learning_starts,
                  epsilon=[(0, 1.0), (s.epsilon_steps, s.epsilon_final)],
                  training_intensity=float(s.batch),  # one minibatch update per sampled step
                  replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 50_000})
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden[:-1]), fcnet_activation="relu",
                                                   head_fcnet_hiddens=[s.hidden[-1]]))
        .reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=steps_per_iteration)
        .debugging(seed=seed, log_level="ERROR")
    )


def local_env(algo) -> Any:
    """The single env of an algorithm's local env runner (num_env_runners=0), unwrapped."""
    return algo.env_runner.env.unwrapped.envs[0].unwrapped


def get_weights(algo) -> Weights:
    return {mid: {k: np.asarray(v) for k, v in sd.items()} for mid, sd in algo.learner_group.get_weights().items()}


def set_weights(algo, w: Weights) -> None:
    algo.learner_group.set_weights(w)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)


@dataclass
class RoundRecord:
    round: int
    real_steps: int
    reward: float  # mean over the round's real steps
    utility: float
    ssr: list[float]
    gamma: float
    twin: dict[str, float] | None = None


@dataclass
class ArmResult:
    """One arm (plain, twin or random) of one seed."""

    arm: str
    seed: int
    rounds: list[RoundRecord] = field(default_factory=list)
    weights: Weights | None = None  # Agent 1's final weights
    twin_weights: Weights | None = None  # Agent 2's last weights (twin arm)
    twin_blob: dict | None = None  # the last recalibrated twin (``models.twin.load_twin`` reads it once saved)
    data: Transitions | None = None  # every real transition
    wall_s: float = 0.0


def _record(i: int, steps: int, d: Transitions, ssr: np.ndarray, twin: dict | None = None) -> RoundRecord:
    return RoundRecord(i, steps, float(d.r.mean()), float(d.u.mean()), [float(x) for x in ssr.mean(axis=0)],
                       float(d.gamma[-1]), twin)


def run_arm(s: TwinSettings, seed: int, use_twin: bool, progress: Progress | None = None) -> ArmResult:
    """Algorithm 1 (``use_twin``) or the same DQN without the twin, for ``s.rounds`` rounds."""
    from slicing.rl.train import require_ray
    from slicing.threads import single_torch_thread

    require_ray()
    register()
    arm = "twin" if use_twin else "plain"
    env_cfg = s.env.model_copy(update={"seed": seed, "episode_len": s.steps_per_round})
    res = ArmResult(arm, seed)
    t0 = time.perf_counter()
    with single_torch_thread():
        agent1 = dqn_config(s, REAL_ENV, env_cfg, seed, s.steps_per_round).build_algo()
        agent2 = None
        twin = None
        if use_twin:
            twin_cfg = env_cfg.model_copy(update={"seed": seed + 10_000, "episode_len": s.steps_per_round})
            agent2 = dqn_config(s, TWIN_ENV, twin_cfg, seed + 1, s.twin_steps).build_algo()
            twin = DigitalTwin(hidden=s.twin_hidden, seq_len=s.twin_seq_len, seed=seed)
        try:
            real: BaseStationEnv = local_env(agent1)
            data = Transitions.empty()
            for i in range(1, s.rounds + 1):
                agent1.train()  # T real steps (lines 13-19)
                ssr = np.asarray([h[6] for h in real.history])
                d = real.drain()
                data = data.extend(d)
                fid = None
                if use_twin:
                    assert agent2 is not None and twin is not None
                    fid = twin.fit(data, gamma_max=s.env.gamma_max, updates=s.twin_updates)  # line 4
                    set_weights(agent2, get_weights(agent1))  # line 20 (theta2 <- theta1)
                    local_env(agent2).set_twin(twin.payload(), real.steps)
                    agent2.train()  # Phi twin steps (lines 5-11)
                    set_weights(agent1, soft_merge(get_weights(agent1), get_weights(agent2), s.zeta))  # eq. 8
                res.rounds.append(_record(i, real.steps, d, ssr, fid))
                if progress:
                    progress(f"{arm} seed {seed}", i, s.rounds)
            res.weights = get_weights(agent1)
            if agent2 is not None:
                res.twin_weights = get_weights(agent2)
                res.twin_blob = twin.to_blob() if twin is not None else None
            res.data = data
        finally:
            agent1.stop()
            if agent2 is not None:
                agent2.stop()
    res.wall_s = time.perf_counter() - t0
    return res


def run_random(s: TwinSettings, seed: int) -> ArmResult:
    """A uniformly random split every step, same env, seed and budget."""
    env_cfg = s.env.model_copy(update={"seed": seed, "episode_len": s.steps_per_round})
    env = BaseStationEnv(env_cfg.model_dump(mode="json"))
    env.reset(seed=seed)
    rng = np.random.default_rng(seed + 77)
    res = ArmResult("random", seed)
    t0 = time.perf_counter()
    data = Transitions.empty()
    for i in range(1, s.rounds + 1):
        for _ in range(s.steps_per_round):
            env.step(int(rng.integers(env.action_space.n)))
        ssr = np.asarray([h[6] for h in env.history])
        d = env.drain()
        data = data.extend(d)
        res.rounds.append(_record(i, env.steps, d, ssr))
    res.data = data
    res.wall_s = time.perf_counter() - t0
    return res
