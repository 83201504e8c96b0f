"""What-if study files (``studies/*.yaml``): a base scenario x variants x schemes x seeds, as strict typed models.

A study names its base scenario (a scenario YAML, relative to the study file, plus ``set`` overrides), the
population size (``sites``: 3 cells each), a horizon in periods, the schemes and seeds to run, and its variants.
A variant is a list of ``--set``-style overrides plus scenario events (``Scenario.events``: region-scoped traffic
multipliers, a slice added in a fraction of cells, site outages, changed requirements; slicing/config.py). The base
(no changes) is always run and is the reference every variant is compared with.

``load_study(path)`` reads and validates a study and builds every variant's scenario; any error (an unknown key,
a region outside the network, outages that leave no cell, an event past the horizon) is a ``StudyError`` whose
message names the key, e.g. ``variants.1.events.0.region.sites: site 40 is outside the network (0..11)``.
The runner is ``slicing/runtime/whatif.py``; the report ``slicing/experiments/whatif_report.py``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from slicing.config import Scenario, ScenarioError, Strict, format_validation_error, load_scenario, read_yaml_mapping

BASE = "base"
MIN_STEPS = 10  # Scenario.steps' lower bound: a shorter horizon runs the first periods of a 10-period scenario
SCHEMES = ("idla", "traffic", "equal")  # the runtime schemes a study can run (rl needs a checkpoint per network)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+%-]{0,63}$")


class StudyError(ValueError):
    """A study file that does not validate; the message names each key and rule."""


class EstimatorSpec(Strict):
    """The QoS estimator of scheme ``idla``: a saved one (``path``, from ``slicing train-estimator``), else one
    trained before the runs on ``sites`` sites of the base scenario with every catalogue slice active (an exploring
    behaviour policy for ``periods`` periods, ``epochs`` epochs)."""

    path: str | None = Field(default=None, description="a saved estimator (.pt), relative to the study file")
    sites: int = Field(default=12, ge=1, le=1000, description="sites of the training network")
    periods: int = Field(default=600, ge=20, le=100_000, description="periods collected for training")
    epochs: int = Field(default=60, ge=1, le=10_000, description="training epochs")


class Variant(Strict):
    """One what-if: overrides of the base scenario plus scenario events (``Scenario.events``)."""

    name: str = Field(description="a short label: letters, digits and _ . + % -; not 'base'")
    description: str = Field(default="", description="one line for the report")
    set: tuple[str, ...] = Field(default=(), description="--set style dotted.key=value overrides")
    events: tuple[dict[str, Any], ...] = Field(default=(), description="scenario events added to the base's")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-64 letters, digits or _ . + % - (starting with a letter or digit)")
        if v == BASE:
            raise ValueError("'base' is the unchanged scenario, run always; choose another name")
        return v


class Study(Strict):
    """A what-if study: every variant and the base, under every scheme, for every seed."""

    name: str = Field(description="the study's name (report title, output names)")
    description: str = Field(default="", description="what the study asks")
    scenario: str | None = Field(default=None, description="base scenario YAML, relative to the study file; "
                                                           "omitted = the defaults")
    set: tuple[str, ...] = Field(default=(), description="--set overrides of the base scenario")
    sites: int | None = Field(default=None, ge=1, le=1_000_000, description="population size in sites (3 cells "
                                                                             "each); omitted = the scenario's")
    periods: int = Field(default=96, ge=1, le=100_000, description="horizon in 15-minute periods (96 = a day)")
    schemes: tuple[Literal["idla", "traffic", "equal"], ...] = Field(default=("idla", "traffic"), min_length=1,
                                                                    description="allocation schemes to run")
    seeds: tuple[int, ...] = Field(default=(0,), min_length=1, max_length=100, description="scenario seeds")
    shards: int = Field(default=1, ge=1, le=1024, description="shards of each run's population")
    cpus_per_run: float = Field(default=1.0, gt=0, le=64, description="CPUs each run asks Ray for (the "
                                                                       "autoscaler adds workers for the rest)")
    memory_mb_per_run: int | None = Field(default=None, ge=1, description="memory each run asks Ray for")
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources each run asks for, "
                                                                          "e.g. {study: 1} for cluster/aws.yaml's "
                                                                          "study_worker nodes")
    detail: Literal["auto", "cells", "aggregate"] = Field(
        default="auto", description="per (cell, slice, period) KPIs in Parquet ('cells'), per-cell and per-period "
                                    "aggregates only ('aggregate'), or cells up to 2M cell-periods per run ('auto')")
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec, description="scheme idla's QoS estimator")
    variants: tuple[Variant, ...] = Field(min_length=1, max_length=100, description="the what-ifs")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        return v

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        for k, amount in v.items():
            if k in ("CPU", "GPU", "memory"):
                raise ValueError(f"{k}: use cpus_per_run / memory_mb_per_run for Ray's built-in resources")
            if not amount > 0:
                raise ValueError(f"{k}: the amount must be > 0, got {amount}")
        return v

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("schemes must be unique")
        return v

    @model_validator(mode="after")
    def _unique_variants(self) -> Study:
        seen: dict[str, int] = {}
        for i, v in enumerate(self.variants):
            if v.name in seen:
                raise ValueError(f"variants.{i}.name: {v.name!r} is already the name of variants.{seen[v.name]}")
            seen[v.name] = i
        return self


class LoadedStudy:
    """A validated study with its path and every variant's scenario (``scenarios[name]``, base first)."""

    def __init__(self, study: Study, path: Path, scenarios: dict[str, Scenario]) -> None:
        self.study, self.path, self.scenarios = study, path, scenarios

    @property
    def names(self) -> list[str]:
        return list(self.scenarios)

    @property
    def cells(self) -> int:
        return self.scenarios[BASE].cells

    def estimator_path(self) -> Path | None:
        p = self.study.estimator.path
        return None if p is None else (self.path.parent / p if not Path(p).is_absolute() else Path(p))


def _base_data(study: Study, path: Path) -> tuple[dict[str, Any], list[str]]:
    """The base scenario as plain data and the overrides every variant starts from."""
    base_file = None if study.scenario is None else path.parent / study.scenario
    if base_file is not None and not base_file.is_file():
        raise StudyError(f"scenario: file {base_file} does not exist")
    try:
        base = load_scenario(base_file, list(study.set))
    except ScenarioError as err:
        raise StudyError(f"scenario ({base_file or 'defaults'} with set): {err}") from None
    data = base.model_dump(mode="json")
    fixed = [f"steps={max(study.periods, MIN_STEPS)}"] + ([f"topology.sites={study.sites}"] if study.sites else [])
    return data, fixed


def _variant_scenario(data: dict[str, Any], fixed: list[str], variant: Variant | None, key: str) -> Scenario:
    from slicing.config import apply_overrides

    d = apply_overrides(copy.deepcopy(data), fixed)
    if variant is not None:
        try:
            d = apply_overrides(d, list(variant.set))
        except ScenarioError as err:
            raise StudyError(f"{key}.set: {err}") from None
        if variant.events:
            d["events"] = [*d.get("events", []), *variant.events]
    try:
        return Scenario.model_validate(d)
    except ValidationError as err:
        raise StudyError(_prefixed(err, key, n_base_events=len(data.get("events", [])))) from None


def _prefixed(err: ValidationError, key: str, n_base_events: int) -> str:
    """Scenario errors located in the variant's own part (its events) get the variant's key."""
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int) and loc[1] >= n_base_events:
            loc = [*key.split("."), "events", loc[1] - n_base_events, *loc[2:]]
        elif key == BASE:
            loc = ["scenario", *loc]
        else:
            loc = [*key.split("."), "scenario", *loc]
        msg = e["msg"].removeprefix("Value error, ")
        msg = _rekey_message(msg, key, n_base_events)
        unknown = " (unknown key)" if e["type"] == "extra_forbidden" else ""
        where = ".".join(str(p) for p in loc)
        lines.append(f"{where}: {msg}{unknown}" if where else msg)
    return "; ".join(lines)


def _rekey_message(msg: str, key: str, n_base_events: int) -> str:
    """Whole-model rules name their keys in the message (``events.3 ...``): point them at the variant's events."""
    if key == BASE:
        return msg

    def sub(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return f"{key}.events.{i - n_base_events}" if i >= n_base_events else f"scenario.events.{i}"

    return re.sub(r"(?<![\w.])events\.(\d+)", sub, msg)


def load_study(path: str | Path, overrides: list[str] | None = None) -> LoadedStudy:
    """Read ``path``, apply ``overrides`` (dotted keys of the study, e.g. ``periods=8``) and build every scenario."""
    from slicing.config import apply_overrides

    p = Path(path)
    try:
        data = apply_overrides(read_yaml_mapping(p, StudyError), list(overrides or []))
    except ScenarioError as err:
        raise StudyError(str(err)) from None
    try:
        study = Study.model_validate(data)
    except ValidationError as err:
        raise StudyError(format_validation_error(err)) from None
    base, fixed = _base_data(study, p)
    scenarios = {BASE: _variant_scenario(base, fixed, None, BASE)}
    for i, v in enumerate(study.variants):
        scenarios[v.name] = _variant_scenario(base, fixed, v, f"variants.{i}")
    loaded = LoadedStudy(study, p, scenarios)
    est = loaded.estimator_path()
    if est is not None and not est.is_file():
        raise StudyError(f"estimator.path: file {est} does not exist")
    return loaded
