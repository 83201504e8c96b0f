"""Scheme ``drl`` of the IDLA experiment: RLlib SAC cell agents on the evaluation's own timeline (tiny budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import build_scenario
from slicing.experiments.idla import evaluate, phase_bounds

TINY = {"name": "drl-tiny", "seed": 3, "steps": 40, "topology": {"sites": 1}, "initial_slices": [1, 2, 4],
        "schedule": [{"at_fraction": 0.6, "add": [3]}], "estimator": {"epochs": 2},
        "drl": {"train_batch": 16, "hidden": [16]}}


def test_drl_config_learns_only_after_h0_with_one_module_per_cell():
    from slicing.rl.drl import build_drl_config

    sc = build_scenario(TINY)
    h0_end, _ = phase_bounds(sc)
    config, mapping = build_drl_config(sc, h0_end)
    assert sorted(set(mapping.values())) == ["group_0", "group_1", "group_2"]  # cell-wise agents
    assert config.num_steps_sampled_before_learning_starts == (h0_end - 1) * 3  # all of H0 in the buffer first
    assert config.env_config["timeline"] and config.env_config["record"]
    _, m1 = build_drl_config(build_scenario(TINY | {"drl": {"groups": 1}}), h0_end)
    assert set(m1.values()) == {"group_0"}
    with pytest.raises(ValueError, match="drl.groups"):
        build_drl_config(build_scenario(TINY | {"drl": {"groups": 4}}), h0_end)


def test_evaluate_with_drl_scores_the_same_periods(ray_session):
    sc = build_scenario(TINY)
    seen: dict[str, int] = {}
    res = evaluate(sc, ["traffic", "drl"], progress=lambda stage, k: seen.__setitem__(stage, seen.get(stage, 0) + k))
    h0_end, h1_end = phase_bounds(sc)
    assert len(res.traces["drl"].r) == len(res.traces["traffic"].r) == sc.steps - h0_end
    assert seen["drl"] == sc.steps  # its own agents ran from period 0
    summary = res.summary()["schemes"]
    for phase in ("H1", "H2"):
        m = summary["drl"][phase]
        assert 0 <= m["mean_satisfaction"] <= 1 and m["max_share_sum"] <= 1.0 + 1e-9
    # slice 3 joins in H2: the drl trace has it active there and not before
    drl = res.traces["drl"]
    split = h1_end - h0_end
    assert not np.stack(drl.mask[:split])[..., 2].any() and np.stack(drl.mask[split:])[..., 2].all()


def test_cli_evaluate_drl_json(ray_session, tmp_path):
    res = CliRunner().invoke(app, ["evaluate", "--schemes", "equal,drl", "--set", "topology.sites=1", "--set",
                                   "drl.train_batch=16", "--set", "estimator.epochs=2", "--steps", "30", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(summary["schemes"]) == {"equal", "drl"}
    assert set(summary["schemes"]["drl"]) == {"H1", "H2"}
