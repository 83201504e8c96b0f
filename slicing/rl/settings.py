"""Typed settings of ``slicing.rl`` and of the experiments driving it: the env config, RLlib training, safe DRL,
imitation and transfer. Strict pydantic models (unknown keys fail naming the key; derived values are methods).

This module imports neither Ray nor torch (seconds to import), so the CLI builds its options from these models at
start-up without loading RLlib; the modules that use them import them from here.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from slicing.config import Scenario, Strict
from slicing.errors import FieldError
from slicing.sim.traffic import PERIODS_PER_DAY

Algo = Literal["ppo", "sac"]
ALGOS: tuple[str, ...] = typing.get_args(Algo)
Reward = Literal["min", "sum_log"]


class EnvConfig(Strict):
    """The config of ``CellSlicingEnv``. RLlib hands it to the env as a dict (``env_config``): build it with
    ``EnvConfig(...).model_dump(mode="json")``; the env validates it back, so a misspelt key fails naming it."""

    scenario: Scenario = Field(default_factory=Scenario, description="the simulated scenario (a dict is parsed)")
    cell_ids: tuple[int, ...] | None = Field(default=None, description="global cell ids of the region (overrides "
                                                                        "region)")
    region: int | None = Field(default=None, ge=1, description="cells in the region: contiguous ids from "
                                                                "region_start; None = every cell of the scenario")
    region_start: int = Field(default=0, ge=0, description="first cell id of a region given by its size")
    seed: int | None = Field(default=None, description="seed of the env's RNG (start days); None = fresh entropy")
    reward: Reward = Field(default="min", description="min: min over active slices of r; sum_log: sum log(1 + r)")
    episode_len: int = Field(default=PERIODS_PER_DAY, ge=1, description="periods per episode (96 = one day)")
    timeline: bool = Field(default=False, description="one run from period 0; reset continues after a truncation")
    record: bool = Field(default=False, description="keep every simulated period's KPIs of the region in records")

    @field_validator("cell_ids", mode="before")
    @classmethod
    def _ints(cls, v: Any) -> Any:
        return None if v is None else tuple(int(c) for c in v)  # numpy ids and arrays too


def region_cells(scenario: Scenario, cell_ids=None, region: int | None = None, start: int = 0) -> np.ndarray:
    """The region's sorted global cell ids: ``cell_ids`` as given, else ``region`` contiguous ids from ``start``
    (a band of geography), else every cell of the scenario."""
    if cell_ids is not None:
        ids = np.unique(np.asarray(cell_ids, dtype=np.int64))
    elif region is not None:
        ids = np.arange(start, min(start + int(region), scenario.cells), dtype=np.int64)
    else:
        ids = np.arange(scenario.cells, dtype=np.int64)
    if len(ids) == 0 or ids[0] < 0 or ids[-1] >= scenario.cells:
        raise ValueError(f"region: cell ids must be within [0, {scenario.cells}) and non-empty")
    return ids


class TrainSettings(Strict):
    """What ``build_config``/``train`` train: algorithm, policies per cell group, region, episode and network."""

    algo: Algo = Field(default="ppo", description="ppo | sac (twin-Q SAC, standing in for TD3)")
    groups: int = Field(default=1, ge=1, description="policies: contiguous groups of cells, 1 = one shared policy")
    iterations: int = Field(default=5, ge=0, description="RLlib training iterations (0: an untrained checkpoint)")
    region: int | None = Field(default=None, ge=1, description="region size: cells 0..N-1 (default: all of the "
                                                                "scenario)")
    cell_ids: tuple[int, ...] | None = Field(default=None, description="explicit global cell ids of the region "
                                                                        "(overrides region)")
    episode_len: int = Field(default=96, ge=1, description="periods per episode (96 = one day)")
    reward: Reward = Field(default="min", description="min (min over active slices of r) | sum_log (sum log(1 + r))")
    seed: int = Field(default=0, description="seed of RLlib, the env and the network init")
    hidden: tuple[int, ...] = Field(default=(64, 64), min_length=1, description="hidden layer sizes of every MLP")
    train_batch: int | None = Field(default=None, ge=1, description="agent steps per training batch (default: per "
                                                                     "algorithm)")
    env_config: dict[str, Any] = Field(default_factory=dict, description="extra env config keys (validated by the "
                                                                         "env class's config model)")
    num_env_runners: int = Field(default=0, ge=0, le=256, description="remote RLlib EnvRunner actors sampling in "
                                                                      "parallel, spread over the cluster's nodes "
                                                                      "(0: the driver samples)")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 1 for h in v):
            raise ValueError(f"layer sizes must be >= 1, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _fits_scenario(self, info: ValidationInfo) -> TrainSettings:
        scenario = (info.context or {}).get("scenario")
        if scenario is not None:
            self.check(scenario)
        return self

    def check(self, scenario: Scenario) -> None:
        """``FieldError`` on ``groups`` if the region has fewer cells than groups (validation context
        ``{"scenario": ...}`` runs it too)."""
        n = len(region_cells(scenario, self.cell_ids, region=self.region))
        if self.groups > n:
            raise FieldError(("groups",), f"at most one group per cell ({n} cells in the region)")


class SafetySettings(Strict):
    """The safe-DRL experiment: region, online learning budget, constraint, multiplier and switching."""

    cells: int = Field(default=12, ge=1, description="region size: cells 0..N-1 (capped at the scenario's cells)")
    iterations: int = Field(default=100, ge=2, description="PPO iterations per run (one day of the region each), "
                                                           "one multiplier update per iteration")
    warmup: int = Field(default=5, ge=1, description="first iterations, identical in both runs and left out of the "
                                                     "headline, whose transitions train the first predictor")
    refit_every: int = Field(default=5, ge=1, description="refit the predictor every N iterations")
    target: float = Field(default=0.05, ge=0.0, le=1.0, description="constraint: violation rate <= TARGET")
    eta: float = Field(default=0.5, gt=0.0, description="step size of the multiplier's sub-gradient step")
    lambda_max: float = Field(default=5.0, ge=0.0, description="upper bound of the multiplier")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="switch to the baseline when P(violation) "
                                                                      "> P")
    eval_days: int = Field(default=5, ge=1, description="held-out days (the last days of the run)")
    predictor_epochs: int = Field(default=10, ge=1, description="BCE epochs per (re)fit of the predictor")
    switch_penalty: bool = Field(default=True, description="charge the agent c = 1 in its reward where it was "
                                                           "switched")
    seed: int = Field(default=0, description="seed of RLlib, the envs and the predictor")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> SafetySettings:
        if self.warmup >= self.iterations:
            raise FieldError(("warmup",), f"must be < iterations ({self.iterations})")
        scenario = (info.context or {}).get("scenario")
        if scenario is not None:
            self.check(scenario)
        return self

    def check(self, scenario: Scenario) -> None:
        """``FieldError`` on ``eval_days`` unless the held-out days leave training days in ``scenario``'s run."""
        days = max(1, -(-scenario.steps // PERIODS_PER_DAY))
        if self.eval_days >= days:
            raise FieldError(("eval_days",), f"must leave training days (the run has {days} days)")

    def region(self, scenario: Scenario) -> int:
        """Cells of the region in ``scenario``: ``cells`` capped at the scenario's."""
        return min(self.cells, scenario.cells)


class SafeEnvConfig(EnvConfig):
    """``EnvConfig`` plus the safe env's keys."""

    start_days: tuple[int, ...] | None = Field(default=None, min_length=1, description="days an episode may start "
                                                                                       "on (None: all)")
    lagrange_lambda: float = Field(default=0.0, ge=0.0, description="initial Lagrange multiplier of the reward")
    safety_record: bool = Field(default=False, description="keep (obs, shares, c) of every agent-period")
    safety_record_max: int = Field(default=200_000, ge=1, description="recorded rows kept (the newest)")


class ImitationSettings(Strict):
    """The imitation experiment: region, recording, BC and the online runs."""

    algo: Algo = Field(default="ppo", description="ppo | sac: the online algorithm warm-started from BC")
    cells: int | None = Field(default=None, ge=1, description="region size: cells 0..N-1 (default: all of the "
                                                               "scenario)")
    days: int = Field(default=10, ge=1, description="baseline episodes recorded for behaviour cloning")
    episode_len: int = Field(default=96, ge=1, description="periods per episode (96 = one day)")
    bc_iterations: int = Field(default=200, ge=1, description="BC training iterations (one batch each)")
    iterations: int = Field(default=12, ge=1, description="online RL iterations per curve (warm start and scratch)")
    early: int = Field(default=3, ge=1, description="first iterations averaged into the early reward")
    bc_batch: int = Field(default=512, ge=1, description="recorded transitions per BC update")
    bc_lr: float = Field(default=1e-3, gt=0, description="BC learning rate")
    seed: int = Field(default=0, description="seed of the recorded days, BC and the online runs")
    hidden: tuple[int, ...] = Field(default=(64, 64), min_length=1, description="hidden layer sizes (BC and RL)")
    train_batch: int | None = Field(default=None, ge=1, description="online agent steps per batch (default PPO: one "
                                                                     "episode of every cell; SAC: train.py's)")
    reward: Reward = Field(default="min", description="the env's reward (min | sum_log)")

    @model_validator(mode="after")
    def _early_within_run(self) -> ImitationSettings:
        if self.early > self.iterations:
            raise FieldError(("early",), f"must be <= iterations ({self.iterations})")
        return self

    def train_settings(self, n_cells: int) -> TrainSettings:
        batch = self.train_batch
        if batch is None and self.algo == "ppo":
            batch = n_cells * self.episode_len  # one iteration = one whole episode: rewards comparable across days
        return TrainSettings(algo=self.algo, groups=1, iterations=self.iterations, region=self.cells,
                             episode_len=self.episode_len, reward=self.reward, seed=self.seed, hidden=self.hidden,
                             train_batch=batch)


# -- transfer (paper 002) ------------------------------------------------------------------------------------------
STRATEGIES = ("model", "instance", "integrated", "feature")  # see slicing.rl.transfer
TRAIN_BATCH = 64  # SAC train batch of the transfer runs (agent steps)


class TransferSettings(Strict):
    """The transfer experiment: budgets of the sources and of every target run, which sources and strategies."""

    iterations: int = Field(default=8, ge=1, description="SAC iterations of every target run (scratch and transfers)")
    early: int = Field(default=3, ge=1, description="first iterations averaged into the early reward (the gain)")
    pretrain_iterations: int = Field(default=12, ge=1, description="SAC iterations per source")
    sources: int = Field(default=4, ge=2, le=4, description="source agents (groups src_1..src_N)")
    strategies: tuple[str, ...] = Field(default=STRATEGIES, min_length=1, description="comma-separated transfer "
                                        "strategies compared from the nearest source (integrated is always run)")
    episode_len: int = Field(default=96, ge=1, description="periods per episode (96 = one day)")
    sample_episodes: int = Field(default=2, ge=1, description="default-action episodes per agent for the VAE")
    train_batch: int = Field(default=TRAIN_BATCH, ge=1, description="SAC train batch (agent steps) of every run")
    seed: int = Field(default=0, description="seed of every run, the samples and the VAE")

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in v if n not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown {unknown}; choose from {list(STRATEGIES)}")
        return v

    @model_validator(mode="after")
    def _early_within_run(self) -> TransferSettings:
        if self.early > self.iterations:
            raise FieldError(("early",), f"must be <= iterations ({self.iterations})")
        return self

    @property
    def compared(self) -> list[str]:
        """The strategies run from the nearest source: ``strategies`` in order, integrated always among them."""
        return list(dict.fromkeys([*self.strategies, "integrated"]))


# --------------------------------------------------------------------------------------- digital twin (paper 004)

TwinAlgo = Literal["dqn", "ddqn", "dueling"]
TWIN_ALGOS: tuple[str, ...] = typing.get_args(TwinAlgo)


class BsEnvConfig(Strict):
    """The base-station MDP of paper 004 (``slicing/rl/bs_env.py``; both the real env and the twin env)."""

    seed: int = Field(default=0, ge=0, lt=2**31)
    resolution_hz: Literal[1_000_000, 200_000] = Field(default=1_000_000, description="bandwidth step: 1 MHz "
                                                       "(171 actions) or 200 kHz (4851)")
    episode_len: int = Field(default=200, ge=1, le=1_000_000, description="steps per episode (a round)")
    alpha: float = Field(default=0.01, ge=0, description="eq. 5's weight of spectral efficiency")
    beta: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="eq. 5's SSR weights")
    gamma_min: float = Field(default=2.0, description="eq. 6's starting threshold (ours: a random split's mean "
                                                      "utility)")
    gamma_max: float = Field(default=2.75, description="eq. 6's final threshold (ours: cleared by the best 3 of "
                                                       "171 splits)")
    ramp_steps: int = Field(default=3000, ge=1, description="real steps for the threshold to reach gamma_max")

    @model_validator(mode="after")
    def _thresholds(self) -> BsEnvConfig:
        if self.gamma_max < self.gamma_min:
            raise FieldError(("gamma_max",), f"must be >= gamma_min ({self.gamma_min}), got {self.gamma_max}")
        return self


class TwinSettings(Strict):
    """Budgets of ``slicing experiment twin`` (Algorithm 1 and its derivatives); every default is the full run's."""

    algo: TwinAlgo = Field(default="ddqn", description="phi: dqn, ddqn (double Q) or dueling (double Q + dueling)")
    seeds: tuple[int, ...] = Field(default=(0, 1, 2), min_length=1, description="one run per seed; the spread is "
                                                                                "shown")
    rounds: int = Field(default=30, ge=1, le=100_000, description="Algorithm 1's rounds Gamma")
    steps_per_round: int = Field(default=200, ge=4, le=1_000_000, description="T: Agent 1's real steps per round "
                                                                            "(the paper's round: 200)")
    twin_steps: int = Field(default=400, ge=4, le=1_000_000, description="Phi: Agent 2's steps in the twin per "
                                                                       "round")
    zeta: float = Field(default=0.5, ge=0.0, le=1.0, description="eq. 8's empowerment: theta1 = zeta theta1 + "
                                                                "(1 - zeta) theta2")
    lr: float = Field(default=1e-3, gt=0, le=1, description="Adam learning rate (paper: 1e-3)")
    batch: int = Field(default=32, ge=1, le=4096, description="minibatch N")
    discount: float = Field(default=0.8, ge=0, lt=1, description="lambda of eq. 10 ([4]'s code: 0.8)")
    hidden: tuple[int, ...] = Field(default=(256, 256, 128, 128), min_length=2, description="Q network's hidden "
                                                                                            "layers (paper)")
    epsilon_steps: int = Field(default=3000, ge=1, description="real steps for epsilon to fall from 1 to its floor")
    epsilon_final: float = Field(default=0.02, ge=0, le=1)
    target_update: int = Field(default=200, ge=1, description="steps between target-network copies")
    learning_starts: int = Field(default=200, ge=0, description="steps sampled before the first update")
    twin_updates: int = Field(default=300, ge=1, le=1_000_000, description="twin recalibration minibatches (64 "
                                                                          "windows each) per round")
    twin_hidden: int = Field(default=64, ge=4, le=4096)
    twin_seq_len: int = Field(default=8, ge=1, le=1000, description="LSTM training window")
    student_hidden: tuple[int, ...] = Field(default=(4, 16), min_length=1, description="distilled students' "
                                                                                      "neurons per layer (2 layers)")
    distill_epochs: int = Field(default=200, ge=1, le=100_000)
    eval_steps: int = Field(default=200, ge=1, le=1_000_000, description="real steps of each greedy evaluation")
    offline_transitions: int = Field(default=2000, ge=32, le=10_000_000, description="M: the fixed dataset's "
                                                                                   "random-policy transitions")
    offline_epochs: int = Field(default=200, ge=1, le=100_000, description="passes over the dataset (paper: 200)")
    upsilon: float = Field(default=1.0, ge=0, description="eq. 13's regulariser towards the twin-trained weights")
    landscape_points: int = Field(default=41, ge=3, le=10_001, description="lambda values in [-1, 1]")
    twin: str | None = Field(default=None, description="--part offline: a saved twin (train writes "
                                                       "<out>/agents/<algo>/digital_twin_s<seed>.pt) instead of one "
                                                       "fitted on the offline dataset")
    env: BsEnvConfig = Field(default_factory=BsEnvConfig)
    # --part multicell: the loop on the IDLA scenario's drl scheme (SAC cell agents)
    scenario: str = Field(default="scenarios/idla.yaml", min_length=1, description="--part multicell: the "
                                                                                   "scenario whose drl scheme runs")
    h1_periods: int = Field(default=576, ge=1, le=1_000_000, description="--part multicell: H1 periods run and "
                                                                        "scored (576 = 6 days)")
    round_periods: int = Field(default=96, ge=1, le=1_000_000, description="--part multicell: real periods "
                                                                          "between twin rounds")
    twin_periods: int = Field(default=96, ge=1, le=1_000_000, description="--part multicell: Agent 2's periods "
                                                                         "in the twin per round")

    @model_validator(mode="after")
    def _twin_data(self) -> TwinSettings:
        if self.steps_per_round < 2 * self.twin_seq_len:
            raise FieldError(("steps_per_round",), f"must be >= 2 * twin_seq_len ({2 * self.twin_seq_len}): the "
                                                   "twin's first calibration needs that many transitions")
        return self
