"""The sweep file (``tune_configs/*.yaml``): a typed model, its loader, and its search space as Ray Tune domains.

A sweep names a ``target`` (what one trial runs, see ``slicing/sweeps/trainables.py``), a scenario with ``--set``
overrides (the data and population the trials share), and a ``search_space`` of parameters of that target:

- ``estimator``: fields of ``EstimatorConfig`` (``hidden``, ``lr``, ``batch_size``, ...);
- ``idla``: fields of ``IdlaConfig`` (``starts``, ``step_x``, ``step_lambda``, ``start_sigma``, ...);
- ``sac``: fields of ``SacParams`` below (``lr``, ``gamma``, ``tau``, ``hidden``, ``train_batch_size``).

Every model forbids unknown keys, and every sampled bound is checked against the target's own model when the
file is loaded, so a typo or an out-of-range bound fails before Ray starts, naming the key
(``search_space.lr.low: Input should be greater than 0``).

Choices whose values are not scalars (``hidden: [[64, 32], [36, 24, 16, 16]]``) go to Tune as JSON strings,
because Optuna's categorical distribution only holds scalars; ``decode`` turns a trial's config back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slicing.config import (
    EstimatorConfig,
    IdlaConfig,
    Scenario,
    ScenarioError,
    format_validation_error,
    load_scenario,
    read_yaml_mapping,
)


class SweepFileError(ValueError):
    """A sweep file that does not load or validate; the message names the key and the rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SacParams(_Strict):
    """The SAC hyperparameters a sweep may sample (mapped onto the RLlib SAC config by the SAC trainable)."""

    lr: float = Field(default=3e-4, gt=0, le=1, description="learning rate of actor, critic and alpha")
    gamma: float = Field(default=0.99, gt=0, le=1, description="discount factor")
    tau: float = Field(default=5e-3, gt=0, le=1, description="soft target-network update coefficient")
    hidden: tuple[int, ...] = Field(default=(256, 256), min_length=1, description="policy and Q MLP hidden sizes")
    train_batch_size: int = Field(default=256, ge=1, le=1_000_000, description="replay minibatch size")


TARGET_PARAMS: dict[str, type[BaseModel]] = {"estimator": EstimatorConfig, "idla": IdlaConfig, "sac": SacParams}
DEFAULT_METRIC = {"estimator": ("mae", "min"), "idla": ("utility_vs_grid_oracle", "max"), "sac": ("reward", "max")}


class Choice(_Strict):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1, description="the candidates, sampled uniformly")


class Uniform(_Strict):
    type: Literal["uniform"]
    low: float = Field(description="lower bound (inclusive)")
    high: float = Field(description="upper bound")

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self


class LogUniform(Uniform):
    type: Literal["loguniform"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.low <= 0:
            raise ValueError(f"low ({self.low}) must be > 0 for a log-uniform range")
        return self


class RandInt(_Strict):
    type: Literal["randint"]
    low: int = Field(description="lower bound (inclusive)")
    high: int = Field(description="upper bound (exclusive, as tune.randint)")

    @model_validator(mode="after")
    def _order(self) -> RandInt:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high}); high is exclusive")
        return self


Param = Annotated[Choice | Uniform | LogUniform | RandInt, Field(discriminator="type")]


class Asha(_Strict):
    """Asynchronous successive halving; time is counted in reports (``training_iteration``)."""

    type: Literal["asha", "none"] = Field(default="asha", description="'asha', or 'none' to run every trial out")
    max_t: int = Field(default=10, ge=1, description="reports after which a trial is stopped anyway")
    grace_period: int = Field(default=1, ge=1, description="reports every trial gets before it may be stopped")
    reduction_factor: float = Field(default=3.0, gt=1, description="1/rate of trials kept at each rung")

    @model_validator(mode="after")
    def _grace(self) -> Asha:
        if self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t})")
        return self


class TrialSettings(_Strict):
    """What each trial does besides the sampled parameters (fixed across the trials of a sweep)."""

    epochs_per_report: int = Field(default=5, ge=1, description="estimator: epochs between two reports of the "
                                                                 "held-out MAE (one ASHA time unit)")
    cells: int = Field(default=2000, ge=3, le=3_000_000, description="idla: cells of the fixed population "
                                                                     "(rounded up to whole sites)")
    oracle_points: int = Field(default=21, ge=3, le=101, description="idla: grid points of the DP oracle "
                                                                     "(21 = the 0.05 grid)")
    iterations: int = Field(default=20, ge=1, le=100_000, description="sac: training iterations (one report each)")
    region: int | None = Field(default=12, ge=1, description="sac: cells of the trained region (None = all)")
    episode_len: int = Field(default=96, ge=1, le=100_000, description="sac: periods per episode")
    torch_threads: int = Field(default=1, ge=1, le=64, description="torch threads inside one trial")


class Resources(_Strict):
    cpu: float = Field(default=1.0, gt=0, le=1024, description="CPUs reserved per trial")


class Sweep(_Strict):
    """One Ray Tune sweep (``slicing tune FILE``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="experiment name: the folder "
                                                                                "<storage_path>/<name>")
    target: Literal["estimator", "idla", "sac"] = Field(description="what a trial runs")
    scenario: Path | None = Field(default=None, description="scenario YAML (relative to the sweep file's folder "
                                                            "if not found from the working directory)")
    overrides: list[str] = Field(default_factory=list, description="--set dotted.key=value on the scenario")
    search_space: dict[str, Param] = Field(min_length=1, description="parameter of the target -> distribution")
    scheduler: Asha | None = Field(default=None, description="early stopping; null or type 'none' = none")
    search: Literal["random", "optuna"] = Field(default="random", description="random, or Optuna's TPE "
                                                                              "(needs `pip install optuna`)")
    metric: str | None = Field(default=None, description="reported metric to optimise (default per target: "
                                                         "mae / utility_vs_grid_oracle / reward)")
    mode: Literal["min", "max"] | None = Field(default=None, description="minimise or maximise the metric")
    num_samples: int = Field(default=8, ge=1, le=100_000, description="trials")
    resources_per_trial: Resources = Field(default_factory=Resources, description="per-trial resources")
    storage_path: Path = Field(default=Path("out/tune"), description="Tune's storage folder")
    seed: int = Field(default=0, ge=0, lt=2**32, description="seed of the search and of every trial's training")
    trial: TrialSettings = Field(default_factory=TrialSettings, description="fixed per-trial settings")

    @model_validator(mode="after")
    def _check_space(self) -> Sweep:
        params = TARGET_PARAMS[self.target]
        for key, dist in self.search_space.items():
            if key not in params.model_fields:
                raise ValueError(f"search_space.{key}: not a parameter of the {self.target} target; "
                                 f"choose from {sorted(params.model_fields)}")
            field = params.model_fields[key]
            if field.annotation is int and isinstance(dist, Uniform):
                raise ValueError(f"search_space.{key}: {key} is an integer; use randint or choice, not {dist.type}")
            for where, value in _probe_values(dist):
                try:
                    params.model_validate({key: value})
                except ValidationError as err:
                    msg = format_validation_error(err).split(": ", 1)[-1]
                    raise ValueError(f"search_space.{key}.{where}: {msg} (got {value!r})") from None
        if self.metric is not None and self.mode is None:
            raise ValueError("mode: required when metric is set ('min' or 'max')")
        return self

    @property
    def metric_name(self) -> str:
        return self.metric or DEFAULT_METRIC[self.target][0]

    @property
    def metric_mode(self) -> str:
        return self.mode or DEFAULT_METRIC[self.target][1]

    @property
    def asha(self) -> Asha | None:
        return self.scheduler if self.scheduler is not None and self.scheduler.type == "asha" else None


def _probe_values(dist: Choice | Uniform | RandInt) -> list[tuple[str, Any]]:
    if isinstance(dist, Choice):
        return [(f"values.{i}", v) for i, v in enumerate(dist.values)]
    if isinstance(dist, RandInt):
        return [("low", dist.low), ("high", dist.high - 1)]
    return [("low", dist.low), ("high", dist.high)]


def _encoded(dist: Choice) -> bool:
    return any(isinstance(v, list | dict | tuple) for v in dist.values)


def to_tune_space(sweep: Sweep) -> dict[str, Any]:
    """The search space as ``ray.tune`` sample objects (non-scalar choices as JSON strings, see ``decode``)."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, dist in sweep.search_space.items():
        if isinstance(dist, Choice):
            values = [json.dumps(v) for v in dist.values] if _encoded(dist) else list(dist.values)
            space[key] = tune.choice(values)
        elif isinstance(dist, LogUniform):
            space[key] = tune.loguniform(dist.low, dist.high)
        elif isinstance(dist, Uniform):
            space[key] = tune.uniform(dist.low, dist.high)
        else:
            space[key] = tune.randint(dist.low, dist.high)
    return space


def decode(sweep: Sweep, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled config with JSON-encoded choices turned back into values (only the swept keys)."""
    out: dict[str, Any] = {}
    for key, dist in sweep.search_space.items():
        value = config[key]
        if isinstance(dist, Choice) and _encoded(dist) and isinstance(value, str):
            value = json.loads(value)
        out[key] = value.item() if hasattr(value, "item") else value  # numpy scalars -> plain
    return out


def apply_params(sweep: Sweep, base: BaseModel, params: dict[str, Any]) -> BaseModel:
    """``base`` (e.g. the scenario's IdlaConfig) with the sampled params, validated."""
    try:
        return type(base).model_validate({**base.model_dump(), **params})
    except ValidationError as err:
        raise SweepFileError(f"{sweep.target} parameters: {format_validation_error(err)}") from None


def load_sweep(path: str | Path, num_samples: int | None = None, storage_path: Path | None = None,
               extra_overrides: list[str] | None = None) -> Sweep:
    """Read and validate a sweep YAML; CLI values replace the file's ``num_samples`` / ``storage_path``."""
    p = Path(path)
    data = read_yaml_mapping(p, SweepFileError)
    if num_samples is not None:
        data["num_samples"] = num_samples
    if storage_path is not None:
        data["storage_path"] = str(storage_path)
    if extra_overrides:
        data["overrides"] = [*(data.get("overrides") or []), *extra_overrides]
    try:
        sweep = Sweep.model_validate(data)
    except ValidationError as err:
        raise SweepFileError(f"{p}: {format_validation_error(err)}") from None
    if sweep.scenario is not None and not sweep.scenario.is_file() and (p.parent / sweep.scenario).is_file():
        sweep = sweep.model_copy(update={"scenario": p.parent / sweep.scenario})
    return sweep


def sweep_scenario(sweep: Sweep) -> Scenario:
    """The sweep's scenario with its overrides (errors name the scenario key, prefixed by ``scenario``)."""
    try:
        return load_scenario(sweep.scenario, list(sweep.overrides))
    except ScenarioError as err:
        raise SweepFileError(f"scenario ({sweep.scenario or 'defaults'}): {err}") from None
