"""Paper 004's derivatives of the twin-enhanced agent: knowledge distillation, offline RL (Algorithm 2) and loss
landscapes. They work on the trained agents' RLlib modules (``DefaultDQNTorchRLModule``) directly in torch.

- **Distillation** (eq. 12): a student MLP with 2 hidden layers of 4 or 16 neurons and a softmax over the actions
  learns the teacher's greedy action on states from the experience pool (cross-entropy on pseudo-labels).
- **Offline RL** (Algorithm 2, eq. 13): T minibatch steps of the DQN loss on a fixed dataset of random-policy
  transitions, plus upsilon / 2 ||theta1 - theta2||^2 towards the twin-trained weights theta2 (Agent 2 trained in a
  twin fitted on that same dataset). The baseline is the same loop with upsilon = 0 and no twin.
- **Loss landscape** (eq. 11): L(theta + lambda v) of the DQN loss on fixed transitions, v the gradient direction
  or a random one, both filter-normalised (Li et al.: every row of a weight matrix scaled to the norm of the
  corresponding row of theta), so lambda = 1 is a perturbation as large as the weights. Flatness is the curvature
  at 0, (L(h) + L(-h) - 2 L(0)) / h^2 with h the grid step.

The DQN loss is RLlib's (Huber on the TD error; double-Q target when phi uses it; no terminal states: the task
is continuing, episodes are only truncated).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from slicing.models.twin import Transitions
from slicing.rl.bs_env import BaseStationEnv
from slicing.rl.settings import TwinSettings
from slicing.rl.twin import REAL_ENV, Weights, dqn_config

Policy = Callable[[np.ndarray], int]
MODULE = "default_policy"


# ----------------------------------------------------------------------------------------------- modules, loss

def build_module(s: TwinSettings, weights: Weights | None = None, seed: int = 0):
    """phi's torch RLModule (with its target networks), optionally loaded with ``weights``."""
    torch.manual_seed(seed)
    env = BaseStationEnv(s.env.model_dump(mode="json"))
    spec = dqn_config(s, REAL_ENV, s.env, seed, s.steps_per_round).get_rl_module_spec(env=env, inference_only=False)
    module = spec.build()
    module.make_target_networks()  # the learner adds them; a standalone module must too
    if weights is not None:
        module.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights[MODULE].items()})
    return module


def q_values(module, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
    from ray.rllib.core.columns import Columns

    batch = {Columns.OBS: obs}
    out = module.forward_target(batch) if target else module.compute_q_values(batch)
    return out["qf_preds"]


def td_loss(module, batch: dict[str, torch.Tensor], discount: float, double_q: bool) -> torch.Tensor:
    """Mean Huber TD error of the DQN / double-DQN target on (s, a, r, s')."""
    q = q_values(module, batch["s"]).gather(1, batch["a"][:, None]).squeeze(1)
    with torch.no_grad():
        q_next_t = q_values(module, batch["s1"], target=True)
        if double_q:
            a_star = q_values(module, batch["s1"]).argmax(dim=1, keepdim=True)
            nxt = q_next_t.gather(1, a_star).squeeze(1)
        else:
            nxt = q_next_t.max(dim=1).values
        y = batch["r"] + discount * nxt
    return nn.functional.smooth_l1_loss(q, y)


def as_batch(d: Transitions) -> dict[str, torch.Tensor]:
    return {"s": torch.as_tensor(d.s, dtype=torch.float32), "a": torch.as_tensor(d.action, dtype=torch.int64),
            "r": torch.as_tensor(d.r, dtype=torch.float32), "s1": torch.as_tensor(d.s_next, dtype=torch.float32)}


def greedy(module) -> Policy:
    def act(obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(q_values(module, torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
    return act


def evaluate(policy: Policy, s: TwinSettings, seed: int) -> dict[str, float]:
    """Mean reward and utility of ``policy`` over ``s.eval_steps`` real steps of a fresh base station (seed
    ``seed + 50_000``), the threshold at its final value gamma_max."""
    cfg = s.env.model_copy(update={"gamma_min": s.env.gamma_max, "seed": seed + 50_000,
                                   "episode_len": s.eval_steps})
    env = BaseStationEnv(cfg.model_dump(mode="json"))
    obs, _ = env.reset(seed=seed + 50_000)
    r, u = [], []
    for _ in range(s.eval_steps):
        obs, reward, _, _, info = env.step(policy(obs))
        r.append(reward)
        u.append(info["utility"])
    return {"reward": float(np.mean(r)), "utility": float(np.mean(u))}


# ----------------------------------------------------------------------------------------------- distillation

class Student(nn.Module):
    """2 hidden layers of ``hidden`` neurons, logits over the actions (softmax in the loss)."""

    def __init__(self, actions: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def distill_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 12: -1/N sum_i log p_{i, a_i}, p the student's softmax (the paper's sum of 1(j = a_i) log p_ij)."""
    return -torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).mean()


def distill(teacher, states: np.ndarray, hidden: int, epochs: int, seed: int = 0,
            lr: float = 1e-2, batch: int = 256) -> tuple[Student, dict[str, float]]:
    """Train a student on the teacher's greedy actions for ``states`` (80 % train, 20 % held out)."""
    torch.manual_seed(seed)
    x = torch.as_tensor(states, dtype=torch.float32)
    with torch.no_grad():
        y = q_values(teacher, x).argmax(dim=1)
    n_actions = int(q_values(teacher, x[:1]).shape[1])
    student = Student(n_actions, hidden)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    split = max(1, int(len(x) * 0.8))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(split, generator=gen)
        for i in range(0, split, batch):
            idx = perm[i:i + batch]
            loss = distill_loss(student(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        held = student(x[split:]).argmax(dim=1) == y[split:] if split < len(x) else torch.ones(1, dtype=torch.bool)
        final = float(distill_loss(student(x[:split]), y[:split]))
    return student, {"agreement": float(held.float().mean()), "train_loss": final,
                     "params": int(sum(p.numel() for p in student.parameters()))}


def student_policy(student: Student) -> Policy:
    def act(obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(student(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
    return act


# ----------------------------------------------------------------------------------------------- offline RL

def online_params(module) -> list[tuple[str, nn.Parameter]]:
    """The Q function's parameters (not the target networks')."""
    return [(k, p) for k, p in module.named_parameters() if not k.startswith("_target")]


def regulariser(module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """||theta1 - theta2||^2 over the Q function's parameters (eq. 13's penalty without upsilon / 2)."""
    return sum(((p - anchor[k]) ** 2).sum() for k, p in online_params(module))


def sync_target(module) -> None:
    for online, target in module.get_target_network_pairs():
        target.load_state_dict(online.state_dict())


def train_offline(module, data: Transitions, s: TwinSettings, anchor: Weights | None, upsilon: float,
                  seed: int = 0, progress: Callable[[int, int], None] | None = None) -> list[float]:
    """Algorithm 2: ``s.offline_epochs`` passes of minibatch DQN steps on ``data`` with eq. 13's penalty; the
    target network is copied every ``s.target_update`` steps. Returns the mean loss per epoch."""
    batch = as_batch(data)
    anchor_t = ({k: torch.as_tensor(np.asarray(anchor[MODULE][k]), dtype=torch.float32)
                 for k, _ in online_params(module)} if anchor is not None else None)
    if upsilon > 0 and anchor_t is None:
        raise ValueError("upsilon > 0 needs the twin-trained weights (anchor)")
    opt = torch.optim.Adam([p for _, p in online_params(module)], lr=s.lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    step = 0
    history = []
    sync_target(module)
    for epoch in range(s.offline_epochs):
        perm = torch.randperm(n, generator=gen)
        losses = []
        for i in range(0, n, s.batch):
            idx = perm[i:i + s.batch]
            mb = {k: v[idx] for k, v in batch.items()}
            loss = td_loss(module, mb, s.discount, s.algo != "dqn")
            if upsilon > 0:
                loss = loss + 0.5 * upsilon * regulariser(module, anchor_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % s.target_update == 0:
                sync_target(module)
        history.append(float(np.mean(losses)))
        if progress:
            progress(epoch + 1, s.offline_epochs)
    return history


# ----------------------------------------------------------------------------------------------- landscapes

def filter_normalise(direction: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scale each row (filter) of each matrix, and each whole vector, to the norm of the same part of ``params``."""
    out = {}
    for k, d in direction.items():
        p = params[k]
        if d.dim() <= 1:
            out[k] = d * (p.norm() / (d.norm() + 1e-12))
        else:
            dn = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            pn = p.flatten(1).norm(dim=1)
            out[k] = d * (pn / dn).view(-1, *([1] * (d.dim() - 1)))
    return out


def landscape(module, data: Transitions, s: TwinSettings, kind: str, seed: int = 0) -> dict[str, list[float] | float]:
    """L(theta + lambda v) for lambda on ``s.landscape_points`` points of [-1, 1]; v = 'gradient' or 'random'."""
    batch = as_batch(data)
    double_q = s.algo != "dqn"
    names = [k for k, _ in online_params(module)]
    theta = {k: p.detach().clone() for k, p in online_params(module)}
    if kind == "gradient":
        module.zero_grad()
        td_loss(module, batch, s.discount, double_q).backward()
        raw = {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
               for k, p in online_params(module)}
        module.zero_grad()
    elif kind == "random":
        gen = torch.Generator().manual_seed(seed)
        raw = {k: torch.randn(theta[k].shape, generator=gen) for k in names}
    else:
        raise ValueError(f"kind: must be 'gradient' or 'random', got {kind!r}")
    v = filter_normalise(raw, theta)
    lambdas = np.linspace(-1.0, 1.0, s.landscape_points)
    losses = []
    params = dict(online_params(module))
    with torch.no_grad():
        for lam in lambdas:
            for k in names:
                params[k].copy_(theta[k] + float(lam) * v[k])
            losses.append(float(td_loss(module, batch, s.discount, double_q)))
        for k in names:
            params[k].copy_(theta[k])
    h = float(lambdas[1] - lambdas[0])
    mid = len(lambdas) // 2
    curvature = (losses[mid + 1] + losses[mid - 1] - 2 * losses[mid]) / h ** 2
    return {"lambda": [float(x) for x in lambdas], "loss": losses, "curvature": float(curvature),
            "loss_at_0": float(losses[mid])}
