"""Knowledge transfer from a pre-trained source agent to a new target agent (TL-aided MADRL, section IV-C).

An *agent* is one shared RLlib SAC module (``group_0``) acting for a group of cells (``slicing.rl.train.build_config``
with ``algo="sac"``, ``groups=1``, the region given by ``TrainSettings.cell_ids``). SAC (twin-Q, squashed Gaussian)
stands in for the paper's TD3, as everywhere in ``slicing.rl``.

``pretrain_source`` trains the source agent and saves (1) the RLlib checkpoint and (2) its *instances*: every
transition (o_t, a_t, r_t, o_{t+1}) of the source's replay buffer at the end of training, as an ``.npz``
(``obs [M, 5S]``, ``actions [M, S]`` = the module's normalised action in [-1, 1] as RLlib stores it,
``rewards [M]``, ``next_obs [M, 5S]``, ``chain [M]`` = one id per (buffer episode, agent) trajectory, ``t [M]``).

``transfer_train`` trains the target agent with one of the paper's strategies (policy transfer T_pi, instance
transfer T_I of eq. 4):

- ``model``: the target module starts from the source's weights (pi_theta^j <- pi_theta^i): the whole RLModule
  state (policy, twin Q and target Q networks) is loaded from the source checkpoint into the learner's module and
  synced to the env runner before the first sample.
- ``instance``: the target trains from its own random init, but its replay buffer (RLlib's
  ``MultiAgentEpisodeReplayBuffer``) holds the source's transitions from the start, mixed with the target's own as
  they come in: each source trajectory becomes one ``MultiAgentEpisode`` of one agent ``src_<chain>`` mapped to the
  target's module, so SAC's independent sampling draws source and target transitions alike.
- ``integrated`` (the paper's choice): both of the above.
- ``feature``: the paper's feature transfer: only the lower layers are loaded (SAC's encoders ``pi_encoder``,
  ``qf_encoder``, ``qf_twin_encoder`` and their target copies), the heads (``pi``, ``qf``, ``qf_twin``, linear output
  layers) keep the target's random init, and the loaded layers are frozen during training. Freezing: a gradient
  hook returns zeros for every encoder parameter. RLlib's torch learner fails on ``None`` gradients
  (``requires_grad=False``), so zero gradients are the documented equivalent: Adam's moments of those
  parameters stay 0 and the update lr * m / (sqrt(v) + eps) is exactly 0 (no weight decay), so the encoders do not
  move. (The target Q encoders still follow the frozen online encoders by Polyak averaging.)
- ``scratch``: no transfer (the reference DRL agent).

Per training iteration the reward is the mean sampled reward per agent-period of the target's cells (a callback sums
the rewards of every sampled agent step of that iteration): the transferred agents' exploration is included, as
in the paper's training curves. ``early_reward`` = mean over the first ``early`` iterations, ``final_reward`` =
mean over the last ``early``.

Deviations: SAC instead of TD3 (RLlib has no TD3 on the new API stack), with ``initial_alpha=0.02``
(``SAC_TRAINING``, sources and targets alike) instead of RLlib's 1.0: measured on a 3-cell source, alpha 1 kept
the sampled reward at ~0.1-0.2 after 12 iterations (entropy bonus dominating a reward in [0, 1]) while 0.02
reached ~0.87 within 5; a nearly deterministic policy is also closer to the paper's TD3. SAC's entropy temperature
is learner state, not module state, so every target starts from that initial alpha (the source's learned alpha is
not transferred). The source's instances are its whole replay buffer (the paper does not say which subset).
Observation spaces must match (same slice catalogue, obs = 5 * S): a mismatch is a ``ValueError`` naming both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.data.features import obs_dim as obs_dim_of
from slicing.rl.learner import load_weights, on_learner
from slicing.rl.learner import module_state as learner_state
from slicing.rl.settings import STRATEGIES, TRAIN_BATCH
from slicing.rl.train import (
    META_FILE,
    TrainSettings,
    build_config,
    iteration_reward,
    module_id,
    region_cells,
    require_ray,
    sampled_reward_callback,
)
from slicing.threads import single_torch_thread

SCRATCH = "scratch"
MODULE = module_id(0)  # one shared module per agent (groups=1)
MODULE_DIR = ("learner_group", "learner", "rl_module")
ENCODERS = ("pi_encoder.", "qf_encoder.", "qf_twin_encoder.")  # trained (frozen in feature transfer)
TARGET_ENCODERS = ("target_qf_encoder.", "target_qf_twin_encoder.")  # loaded too, Polyak-updated by SAC
# SAC's entropy temperature starts at RLlib's 1.0 and its log is learned at 3e-4 per update, so within a few hundred
# updates alpha stays ~1 and the entropy bonus dominates a reward in [0, 1]: the policy stays near random. A small
# initial alpha (for sources and targets alike) keeps SAC close to the paper's TD3 (deterministic + small noise).
SAC_TRAINING: dict[str, Any] = {"initial_alpha": 0.02}


# ------------------------------------------------------------------------------------------------- training
def _settings(cells: Sequence[int], seed: int, hidden: Sequence[int], episode_len: int,
              train_batch: int) -> TrainSettings:
    return TrainSettings(algo="sac", groups=1, cell_ids=tuple(int(c) for c in cells), episode_len=int(episode_len),
                         seed=int(seed), hidden=tuple(int(h) for h in hidden), train_batch=int(train_batch))


def _build(scenario: Scenario, s: TrainSettings):
    require_ray()
    config, mapping = build_config(scenario, s)
    config = config.training(**SAC_TRAINING)
    return config.callbacks(sampled_reward_callback()).build_algo(), mapping


def module_state(algo, mid: str = MODULE) -> dict[str, np.ndarray]:
    """The learner's module ``mid`` (default: the target's group) as a numpy state dict."""
    return learner_state(algo, mid)


def _train_loop(algo, iterations: int, progress: Callable[[int], None] | None) -> list[float | None]:
    rewards = []
    for i in range(int(iterations)):
        rewards.append(iteration_reward(algo.train()))
        if progress:
            progress(i + 1)
    return rewards


def _save(algo, scenario: Scenario, s: TrainSettings, mapping: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    ckpt = algo.save_to_path(str((out / "checkpoint").resolve()))
    meta = {"algo": s.algo, "groups": s.groups, "mapping": mapping, "settings": s.model_dump(mode="json"),
            "scenario": scenario.model_dump(mode="json"), "n_slices": len(scenario.slices)}
    Path(ckpt, META_FILE).write_text(json.dumps(meta))  # as slicing.rl.train: RlPolicy reads it
    return str(ckpt)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


# ----------------------------------------------------------------------------------------------- instances
def buffer_transitions(buffer) -> dict[str, np.ndarray]:
    """Every agent transition held by a ``MultiAgentEpisodeReplayBuffer`` as flat arrays (module docstring)."""
    obs, actions, rewards, next_obs, chain, t = [], [], [], [], [], []
    k = 0
    for episode in buffer.episodes:
        for agent_episode in episode.agent_episodes.values():
            n = len(agent_episode)
            if n == 0:
                continue
            o = np.asarray(agent_episode.get_observations(), dtype=np.float32)  # [n + 1, D]
            obs.append(o[:-1])
            next_obs.append(o[1:])
            actions.append(np.asarray(agent_episode.get_actions(), dtype=np.float32))  # [n, S]
            rewards.append(np.asarray(agent_episode.get_rewards(), dtype=np.float32))  # [n]
            chain.append(np.full(n, k, dtype=np.int64))
            t.append(np.arange(n, dtype=np.int64))
            k += 1
    if not obs:
        raise ValueError("source replay buffer is empty: train the source for at least one iteration")
    return {"obs": np.concatenate(obs), "actions": np.concatenate(actions), "rewards": np.concatenate(rewards),
            "next_obs": np.concatenate(next_obs), "chain": np.concatenate(chain), "t": np.concatenate(t)}


def transitions_to_episodes(data: dict[str, np.ndarray], mid: str = MODULE) -> list:
    """Source transitions -> one single-agent ``MultiAgentEpisode`` per chain (agent ``src_<chain>`` mapped to
    ``mid``), numpy'd like the env runner's episodes, ready for ``MultiAgentEpisodeReplayBuffer.add``."""
    from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

    episodes = []
    chain = np.asarray(data["chain"])
    for c in np.unique(chain):
        rows = np.flatnonzero(chain == c)
        rows = rows[np.argsort(np.asarray(data["t"])[rows], kind="stable")]
        aid = f"src_{int(c)}"
        o = np.concatenate([data["obs"][rows], data["next_obs"][rows[-1:]]])  # [n + 1, D]
        ep = MultiAgentEpisode(
            observations=[{aid: x} for x in o],
            actions=[{aid: a} for a in data["actions"][rows]],
            rewards=[{aid: float(r)} for r in data["rewards"][rows]],
            terminateds={aid: False, "__all__": False},
            truncateds={aid: True, "__all__": True},
            len_lookback_buffer=0,
            agent_module_ids={aid: mid},
        )
        episodes.append(ep.to_numpy())
    return episodes


def load_transitions(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"source transitions: file {p} does not exist")
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def load_source_state(checkpoint: str | Path, mid: str = MODULE) -> dict[str, np.ndarray]:
    """The source module's full state dict (policy, twin Q and target Q networks) from its RLlib checkpoint.

    Read from the learner's ``module_state.pkl`` (RLlib's Checkpointable pickle of ``get_state()``), not through
    ``RLModule.from_checkpoint``: a freshly built SAC module has no target networks (the learner adds them), so
    that route would drop them."""
    import pickle

    path = Path(checkpoint).joinpath(*MODULE_DIR, mid, "module_state.pkl")
    if not path.is_file():
        raise ValueError(f"source checkpoint {checkpoint}: no module {mid!r} (expected {path})")
    with path.open("rb") as f:
        state = pickle.load(f)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"source checkpoint {checkpoint}: {path} does not hold a module state dict")
    return {k: np.asarray(v).copy() for k, v in state.items()}


# ------------------------------------------------------------------------------------------------- source
def pretrain_source(scenario: Scenario, cells: Sequence[int], out: str | Path, iterations: int, seed: int = 0,
                    hidden: Sequence[int] = (64, 64), *, episode_len: int = 96, train_batch: int = TRAIN_BATCH,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train a source agent (one shared SAC module) on ``cells``; save its checkpoint and replay-buffer
    transitions under ``out``. Returns {"checkpoint", "transitions", "cells", "rewards", "obs_dim", ...}."""
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    cells = [int(c) for c in region_cells(scenario, list(cells))]
    out = Path(out)
    s = _settings(cells, seed, hidden, episode_len, train_batch)
    with single_torch_thread():
        algo, mapping = _build(scenario, s)
        try:
            rewards = _train_loop(algo, iterations, progress)
            data = buffer_transitions(algo.local_replay_buffer)
            ckpt = _save(algo, scenario, s, mapping, out)
        finally:
            algo.stop()
    path = out / "transitions.npz"
    np.savez_compressed(path, **data)
    return {"checkpoint": ckpt, "transitions": str(path), "cells": cells, "rewards": rewards,
            "obs_dim": int(data["obs"].shape[1]), "n_slices": int(data["actions"].shape[1]),
            "transition_count": len(data["rewards"]), "hidden": [int(h) for h in hidden],
            "final_reward": _mean(rewards[-3:])}


# ------------------------------------------------------------------------------------------------- target
def _hidden_of(state: dict[str, np.ndarray]) -> tuple[int, ...]:
    """fcnet_hiddens of a SAC module state: the output sizes of the policy encoder's linear layers."""
    layers = sorted((int(k.split(".")[3]), v.shape[0]) for k, v in state.items()
                    if k.startswith("pi_encoder.net.mlp.") and k.endswith(".weight"))
    return tuple(int(n) for _, n in layers) or (64, 64)


def _check_dims(name: str, got: int, want: int, target_cells: Sequence[int], what: str) -> None:
    if got != want:
        raise ValueError(f"observation spaces do not match: source {name} has {what} {got} but target "
                         f"{list(target_cells)} has {want} (obs = 5 x slices; the slice catalogues differ)")


def _load_into(algo, state: dict[str, np.ndarray], keys: Sequence[str], mid: str = MODULE) -> None:
    load_weights(algo, state, {k: k for k in keys}, mid, "transfer", "use the same hidden sizes")


def _freeze(algo, prefixes: Sequence[str] = ENCODERS, mid: str = MODULE) -> list[str]:
    """Zero the gradient of every parameter under ``prefixes`` (module docstring: frozen under Adam)."""
    def hook(learner) -> list[str]:
        import torch

        names = []
        for name, p in learner.module[mid].named_parameters():
            if name.startswith(tuple(prefixes)):
                p.register_hook(torch.zeros_like)
                names.append(name)
        return names

    return on_learner(algo, hook)


def add_instances(algo, data: dict[str, np.ndarray], mid: str = MODULE) -> int:
    """Put the source transitions in the target algorithm's replay buffer; returns the agent steps added."""
    before = algo.local_replay_buffer.get_num_agent_timesteps()
    algo.local_replay_buffer.add(transitions_to_episodes(data, mid))
    return int(algo.local_replay_buffer.get_num_agent_timesteps() - before)


def transfer_train(scenario: Scenario, target_cells: Sequence[int], strategy: str, source: dict | None,
                   iterations: int, seed: int, out: str | Path, *, early: int = 3, hidden: Sequence[int] | None = None,
                   episode_len: int = 96, train_batch: int = TRAIN_BATCH,
                   progress: Callable[[int], None] | None = None,
                   on_built: Callable[[Any, dict], None] | None = None) -> dict[str, Any]:
    """Train the target agent on ``target_cells`` for ``iterations`` with ``strategy`` from ``source`` (the dict
    of ``pretrain_source``; None only for ``"scratch"``). ``on_built(algo, info)`` is called after the transfer,
    before training (tests inspect the learner and the buffer there)."""
    if strategy not in (*STRATEGIES, SCRATCH):
        raise ValueError(f"strategy: {strategy!r}; choose from {[*STRATEGIES, SCRATCH]}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if int(early) < 1:
        raise ValueError(f"early must be >= 1, got {early}")
    cells = [int(c) for c in region_cells(scenario, list(target_cells))]
    want = obs_dim_of(len(scenario.slices))
    state = data = None
    if strategy != SCRATCH:
        if not isinstance(source, dict):
            raise ValueError(f"strategy {strategy!r} needs a source: the dict returned by pretrain_source")
        for key, needs in (("checkpoint", ("model", "integrated", "feature")), ("transitions", ("instance",
                                                                                               "integrated"))):
            if strategy in needs and not source.get(key):
                raise ValueError(f"strategy {strategy!r} needs the source's {key} (see pretrain_source)")
        name = str(source.get("cells", source.get("checkpoint")))
        if "obs_dim" in source:
            _check_dims(name, int(source["obs_dim"]), want, cells, "observation dim")
        if strategy in ("model", "integrated", "feature"):
            state = load_source_state(source["checkpoint"])
            first = state.get("pi_encoder.net.mlp.0.weight")
            if first is None:
                raise ValueError(f"source {name}: the checkpoint's module is not an RLlib SAC module (no "
                                 "pi_encoder.net.mlp.0.weight)")
            _check_dims(name, int(first.shape[1]), want, cells, "observation dim")
        if strategy in ("instance", "integrated"):
            data = load_transitions(source["transitions"])
            _check_dims(name, int(data["obs"].shape[1]), want, cells, "observation dim")
            _check_dims(name, int(data["actions"].shape[1]), len(scenario.slices), cells, "action dim")
    if hidden is None:  # the source's own layer sizes, so its weights fit
        hidden = _hidden_of(state) if state is not None else (
            tuple(source.get("hidden", (64, 64))) if isinstance(source, dict) else (64, 64))
    s = _settings(cells, seed, hidden, episode_len, train_batch)
    info: dict[str, Any] = {"loaded": [], "frozen": [], "instances": 0}
    with single_torch_thread():
        algo, mapping = _build(scenario, s)
        try:
            if state is not None:
                keys = list(state) if strategy != "feature" else [
                    k for k in state if k.startswith(ENCODERS + TARGET_ENCODERS)]
                _load_into(algo, state, keys)
                info["loaded"] = keys
                if strategy == "feature":
                    info["frozen"] = _freeze(algo)
            if data is not None:
                info["instances"] = add_instances(algo, data)
            if on_built:
                on_built(algo, info)
            rewards = _train_loop(algo, iterations, progress)
            ckpt = _save(algo, scenario, s, mapping, Path(out))
        finally:
            algo.stop()
    k = min(int(early), len(rewards))
    return {"strategy": strategy, "rewards": rewards, "early_reward": _mean(rewards[:k]),
            "final_reward": _mean(rewards[-k:]), "checkpoint": ckpt, "cells": cells,
            "source_cells": None if strategy == SCRATCH else list(source.get("cells", [])),
            "instances": info["instances"], "frozen": len(info["frozen"]), "loaded": len(info["loaded"])}
