"""Safe DRL with RLlib (paper 003, section IV-A): a Lagrangian-constrained PPO agent and baseline switching.

Constraint. Per cell and period the cost is c = 1[any active slice has r < 1] (the paper's c_t(s_t, a_t) >= 0,
"SLA violated"); the constraint is E[c] <= target.

Lagrangian primal-dual (the paper: multipliers re-weight the reward and are updated by sub-gradient steps "in a
larger time scale than that of resource orchestration"). The agent (RLlib PPO, one shared policy over the region's
cells, one day of the region = one episode per iteration) is trained on the Lagrangian reward

    r_shaped = min_s r_s - lambda * c

and once per training iteration (after all of the iteration's SGD steps: the slower time scale) the multiplier
takes a projected sub-gradient step on the dual,

    lambda <- clip(lambda + eta * (mean c over the iteration's samples - target), 0, lambda_max)

and is pushed into the env of the local env runner (``num_env_runners=0``). The cost lambda sees is that of the
APPLIED action (the baseline's where switched).

Baseline switching (the paper's Fig. 4a). The predictor g(s, x) -> P(c = 1) of ``slicing.models.violation`` is
trained on the run's own transitions (observation, applied shares, cost). Per cell and period, if g(s, x_agent) >
threshold the traffic-proportional shares of ``CellSlicingEnv.baseline_shares()`` are applied instead of the
agent's. PPO still learns from the agent's own action (its log-probability); the period's min r is that of the
applied shares, and with ``switch_penalty`` a switched period costs the agent c = 1 in r_shaped (the predictor
judged its action unsafe; without it the agent is credited with the baseline's safety and never learns to be safe
itself). lambda's update is unaffected by the penalty.

Online learning (``learn_online``): the first ``warmup`` iterations have no predictor; with switching, at the end
of iteration ``warmup`` and every ``refit_every`` iterations after it, the predictor is refit from scratch (seeded,
one torch thread) on ALL transitions of the run so far and installed in the env; if the transitions hold one class
only, the previous predictor is kept. The driver is ``slicing.experiments.safety``.

Reproducibility. Everything is seeded, but RLlib's multi-agent connectors order agents through Python sets, so
which agent gets which exploration draw depends on the string-hash seed: fix ``PYTHONHASHSEED`` to repeat a run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.models.violation import train_predictor
from slicing.rl.env import CellSlicingEnv
from slicing.rl.settings import SafeEnvConfig, SafetySettings
from slicing.sim.simulator import INITIAL_UTIL
from slicing.sim.traffic import PERIODS_PER_DAY

R_TOL = 1e-9  # r is min(..., 1.0); "r < 1" is tested as r < 1 - R_TOL
RUNS = ("without_switching", "with_switching")

Switch = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (obs [N, 5S], shares [N, S]) -> P(violation) [N]
Progress = Callable[[str, int, int], None]  # (stage, done, total)


# -- the pieces ----------------------------------------------------------------------------------------------------
def violation_cost(r: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N] float: 1 where any active slice of the cell has r < 1 (cells without active slices: 0)."""
    return (np.asarray(mask, dtype=bool) & (np.asarray(r) < 1.0 - R_TOL)).any(axis=1).astype(np.float64)


def update_multiplier(lam: float, mean_cost: float, target: float, eta: float, lambda_max: float) -> float:
    """One projected sub-gradient ascent step of the dual: clip(lam + eta * (mean_cost - target), 0, lambda_max)."""
    return float(np.clip(lam + eta * (mean_cost - target), 0.0, lambda_max))


def apply_switching(agent_shares: np.ndarray, baseline_shares: np.ndarray, prob: np.ndarray,
                    threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(shares [N, S], switched [N] bool): the baseline's rows where prob > threshold, the agent's elsewhere."""
    switched = np.asarray(prob, dtype=np.float64) > threshold  # [N]
    return np.where(switched[:, None], baseline_shares, agent_shares), switched


# -- the env -------------------------------------------------------------------------------------------------------
class SafeCellSlicingEnv(CellSlicingEnv):
    """``CellSlicingEnv`` with the Lagrangian reward, cost bookkeeping, transition recording and switching.

    Extra ``config`` keys: those of ``SafeEnvConfig``. ``reset(options={"day": d})`` starts on day d. Set
    ``switch`` (and ``threshold``) to switch to the baseline.
    """

    config_model = SafeEnvConfig

    def __init__(self, config: SafeEnvConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg: SafeEnvConfig = self.env_config  # type: ignore[assignment]
        days = cfg.start_days
        self.start_days = np.arange(self.days) if days is None else np.asarray(days, dtype=np.int64)
        self.lagrange_lambda = cfg.lagrange_lambda
        self.switch: Switch | None = None
        self.threshold = 0.9
        self.switch_penalty = False  # charge c = 1 in the agent's reward where it was switched
        rows, width = cfg.safety_record_max if cfg.safety_record else 0, self.n_slices
        self._buf = {"obs": np.zeros((rows, 5 * width), np.float32), "shares": np.zeros((rows, width), np.float32),
                     "cost": np.zeros(rows, np.float32)}
        self._n_rec = 0  # rows written so far (ring buffer position = _n_rec % rows)
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self.last_cost = np.zeros(len(self.region))
        self.last_switched = np.zeros(len(self.region), dtype=bool)
        self._stats = np.zeros(4)  # cost sum, min-r sum, switched, agent-periods
        self._cell_stats = np.zeros((2, len(self.region)))  # per cell: cost sum, periods
        self._day, self._days_stepped = -1, []  # episodes stepped since the last pop_stats: their start days
        self._new_episode = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # mirrors CellSlicingEnv.reset with a chosen start day (a "day" option in the base env would remove this)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        day = int(options["day"]) if options and "day" in options else int(self._rng.choice(self.start_days))
        self.sim.load_state_dict({"period": day * PERIODS_PER_DAY,
                                  "cell_util": np.full(len(self.sim.cell_ids), INITIAL_UTIL),
                                  "backlog_mbit": np.zeros((len(self.sim.cell_ids), self.n_slices))})
        self._report = self._sim_step(self._baseline(), self._halo_first())  # warm-up period
        self._t = 0
        self.agents = list(self.possible_agents)
        self._day, self._new_episode = day, True
        return self._obs_dict(self._obs_array()), {a: {} for a in self.possible_agents}

    def shares_from_actions(self, action_dict: dict[str, np.ndarray]) -> np.ndarray:
        shares = super().shares_from_actions(action_dict)  # [N_sim, S]
        obs, region = self._obs_array(), shares[self._rows]  # [N, 5S], [N, S]
        self.last_switched = np.zeros(len(self.region), dtype=bool)
        if self.switch is not None:
            region, self.last_switched = apply_switching(region, self.baseline_shares(), self.switch(obs, region),
                                                         self.threshold)
            shares[self._rows] = region
        self._pending = (obs, region)
        return shares

    def step(self, action_dict: dict[str, np.ndarray]):
        obs, rewards, terms, truncs, infos = super().step(action_dict)
        rep = self._report
        c = violation_cost(rep.r[self._rows], rep.mask[self._rows])  # [N]
        self.last_cost = c
        raw = np.array([rewards[a] for a in self.possible_agents])
        self._stats += (c.sum(), raw.sum(), self.last_switched.sum(), len(c))
        self._cell_stats[0] += c
        self._cell_stats[1] += 1.0
        if self._new_episode:
            self._days_stepped.append(self._day)
            self._new_episode = False
        self._record(*self._pending, c)
        c_agent = np.maximum(c, self.last_switched) if self.switch_penalty else c  # [N]
        shaped = {a: float(raw[i] - self.lagrange_lambda * c_agent[i]) for i, a in enumerate(self.possible_agents)}
        infos = {a: {"cost": float(c[i]), "switched": bool(self.last_switched[i])}
                 for i, a in enumerate(self.possible_agents)}
        return obs, shaped, terms, truncs, infos

    def _record(self, obs: np.ndarray, shares: np.ndarray, cost: np.ndarray) -> None:
        cap = len(self._buf["cost"])
        if not cap:
            return
        pos = (self._n_rec + np.arange(len(cost))) % cap
        self._buf["obs"][pos], self._buf["shares"][pos], self._buf["cost"][pos] = obs, shares, cost
        self._n_rec += len(cost)

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(obs [M, 5S], shares [M, S], cost [M]) recorded so far (the newest ``safety_record_max``)."""
        m = min(self._n_rec, len(self._buf["cost"]))
        return self._buf["obs"][:m], self._buf["shares"][:m], self._buf["cost"][:m]

    def pop_stats(self) -> dict[str, float]:
        """Mean cost, mean min-r reward and switch rate over the agent-periods since the last call, and the mean cost
        per cell ("cell_cost" [N]) and the start days of the episodes stepped ("days"); then reset."""
        (c, rew, sw, n), (cc, cn) = self._stats, self._cell_stats
        days, self._days_stepped = self._days_stepped, []
        self._stats, self._cell_stats = np.zeros(4), np.zeros_like(self._cell_stats)
        return {"cost": c / max(n, 1), "reward": rew / max(n, 1), "switch_rate": sw / max(n, 1), "n": int(n),
                "cell_cost": cc / np.maximum(cn, 1), "days": days}


# -- online learning -----------------------------------------------------------------------------------------------
def _local_envs(algo) -> list[SafeCellSlicingEnv]:
    return [e.unwrapped for e in algo.env_runner.env.envs]  # num_env_runners=0: the driver's own env runner


def learn_online(scenario: Scenario, s: SafetySettings, train_days: np.ndarray, out: Path, switching: bool,
                 progress: Progress | None = None) -> dict[str, Any]:
    """One online learning run of the Lagrangian PPO agent, with or without baseline switching in its env.

    Per iteration: ``algo.train()`` (sampling one day of the region, then the SGD steps), read the env's cost,
    reward and switch statistics of the periods just sampled, one multiplier step from that cost (the applied
    action's), and, with switching, after ``warmup`` iterations and every ``refit_every`` after that, refit the
    predictor on all of the run's transitions and install it in the env. Returns {"policy": final RlPolicy,
    "history": per-iteration log, "predictor": the last report or None}."""
    from slicing.rl.inference import RlPolicy
    from slicing.rl.train import TrainSettings, build_config, require_ray

    require_ray()
    cells = s.region(scenario)
    batch = cells * PERIODS_PER_DAY  # one day of the region per iteration
    ts = TrainSettings(algo="ppo", groups=1, iterations=s.iterations, region=cells, seed=s.seed, train_batch=batch,
                       env_config={"start_days": [int(d) for d in train_days], "safety_record": True,
                                   "safety_record_max": (s.iterations + 2) * batch})  # every transition of the run
    config, _ = build_config(scenario, ts, SafeCellSlicingEnv)
    # no env check: its unseeded random steps would land in the cost statistics and the recorded transitions
    algo = config.environment(disable_env_checking=True).build_algo()
    name = RUNS[switching]
    lam, history, report = 0.0, [], None
    try:
        for i in range(s.iterations):
            envs = _local_envs(algo)
            algo.train()
            stats = [e.pop_stats() for e in envs]
            n = max(sum(st["n"] for st in stats), 1)
            history.append({
                "iteration": i + 1, "warmup": i < s.warmup,
                # the multiplier the samples were shaped with
                "lambda": float(np.mean([e.lagrange_lambda for e in envs])),
                "violation_rate": sum(st["cost"] * st["n"] for st in stats) / n,
                "reward": sum(st["reward"] * st["n"] for st in stats) / n,
                "switch_rate": sum(st["switch_rate"] * st["n"] for st in stats) / n, "agent_periods": n,
                "cell_violation_rate": np.concatenate([st["cell_cost"] for st in stats]).tolist(),
                "days": [d for st in stats for d in st["days"]], "predictor_refit": False})
            lam = update_multiplier(lam, history[-1]["violation_rate"], s.target, s.eta, s.lambda_max)
            for env in envs:
                env.lagrange_lambda = lam
            if switching and i + 1 >= s.warmup and (i + 1 - s.warmup) % s.refit_every == 0:
                parts = [e.transitions() for e in envs]
                obs, shares, cost = (np.concatenate([p[k] for p in parts]) for k in range(3))
                try:
                    predictor, report = train_predictor(obs, shares, cost, seed=s.seed, epochs=s.predictor_epochs)
                except ValueError:  # one class only so far: keep the previous predictor (or none)
                    continue
                for env in envs:
                    env.switch, env.threshold = predictor.predict_proba, s.threshold
                    env.switch_penalty = s.switch_penalty
                history[-1]["predictor_refit"] = True
            if progress:
                progress(f"learn {name}", i + 1, s.iterations)
        path = algo.save_to_path(str((out / f"checkpoint_{name}").resolve()))
        switch = _local_envs(algo)[0].switch
    finally:
        algo.stop()
    return {"policy": RlPolicy.from_checkpoint(path), "history": history, "predictor": report, "switch": switch}


def online_summary(history: list[dict], warmup: bool = False) -> dict[str, float]:
    """Violation rate, mean min r and switch rate over all (cell, period) of the online phase (the iterations
    after the warm-up; ``warmup=True``: of every iteration)."""
    rows = [h for h in history if warmup or not h["warmup"]]
    n = np.array([h["agent_periods"] for h in rows], dtype=np.float64)
    return {k: float(np.dot(n, [h[key] for h in rows]) / n.sum())
            for k, key in (("violation_rate", "violation_rate"), ("mean_reward", "reward"),
                           ("switch_rate", "switch_rate"))}


# -- evaluation ----------------------------------------------------------------------------------------------------
def run_days(env: SafeCellSlicingEnv, days: np.ndarray, act: Callable[[np.ndarray], np.ndarray],
             switch: Switch | None = None, threshold: float = 0.9) -> dict[str, np.ndarray]:
    """Run whole days from midnight: ``act(obs [N, 5S]) -> actions [N, S]``, optionally with switching.
    Returns cost, reward (min r) and switched, each [days, periods, N]."""
    env.switch, env.threshold = switch, threshold
    cost, reward, switched = [], [], []
    try:
        for d in days:
            obs, _ = env.reset(options={"day": int(d)})
            for _ in range(env.episode_len):
                a = act(np.stack([obs[k] for k in env.possible_agents]))
                obs, rew, *_ = env.step({k: a[i] for i, k in enumerate(env.possible_agents)})
                cost.append(env.last_cost)
                reward.append([rew[k] + env.lagrange_lambda * env.last_cost[i]
                               for i, k in enumerate(env.possible_agents)])
                switched.append(env.last_switched)
    finally:
        env.switch = None
    shape = (len(days), env.episode_len, len(env.region))
    return {"cost": np.reshape(cost, shape), "reward": np.reshape(reward, shape),
            "switched": np.reshape(switched, shape).astype(bool)}


