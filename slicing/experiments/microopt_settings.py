"""Settings of ``slicing experiment microopt`` (paper 001). Torch- and Ray-free, so the CLI builds its options
from this model at start-up without loading either; ``slicing.experiments.microopt`` uses it."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

from pydantic import Field

from slicing.config import Strict

Part = Literal["model", "constant", "thresholds", "dynamic", "ablation", "groundtruth", "domains"]
PARTS: tuple[str, ...] = typing.get_args(Part)


class MicroOptExperimentSettings(Strict):
    """Budgets and the paper's settings of one ``--part`` run; every default is the full-length run's."""

    seed: int = Field(default=0, ge=0, lt=2**31, description="root seed (model data, allocators, RL, simulator)")
    model: Path | None = Field(default=None, description="a saved slice model (slicing/models/slice_model.py); "
                                                         "default: <out>/slice_model.pt, trained when missing")
    epochs: int = Field(default=3000, ge=1, le=100_000, description="slice model training epochs (paper: 3,000)")
    atlas_iterations: int = Field(default=40, ge=1, le=10_000, description="Atlas/Atlas+ BO evaluations per "
                                                                          "slice instance")
    cadrl_iterations: int = Field(default=100, ge=1, le=10_000, description="PPO iterations of CaDRL (trained once "
                                                                           "over the traffic family)")
    cadrl_plus_iterations: int = Field(default=100, ge=1, le=10_000, description="PPO iterations of each CaDRL+ "
                                                                                "(one per predicted distribution)")
    rl_batch: int = Field(default=2048, ge=64, le=1_000_000, description="decisions per PPO iteration of CaDRL(+) "
                                                                       "(the per-domain agents: half of it)")
    sigma_mean: float = Field(default=0.5, gt=0, le=5, description="small traffic std, users/s (the paper's "
                                                                   "sigma_mean; its value is not given: ours)")
    sigma_max: float = Field(default=1.5, gt=0, le=5, description="large traffic std, users/s (sigma_max; ours)")
    slots: int = Field(default=60, ge=2, le=10_000, description="slots of one reconfiguration interval")
    gt_intervals: int = Field(default=20, ge=1, le=10_000, description="intervals simulated per allocation in "
                                                                      "--part groundtruth")
    domain_slices: int = Field(default=60, ge=1, le=100_000, description="unseen SLA-carrying slices the "
                                                                         "per-domain agents are compared on")
    domain_iterations: int = Field(default=30, ge=1, le=10_000, description="PPO iterations of the per-domain "
                                                                            "agents (--part domains)")
