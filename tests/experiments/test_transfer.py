"""The transfer experiment's driver (slicing/experiments/transfer.py): Spearman, the heterogeneous network, and
``slicing experiment transfer`` end to end at a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app

KEYS = {"ranking", "gain_nearest", "gain_farthest", "spearman_distance_gain", "strategies"}


def test_spearman_and_heterogeneous_network():
    from slicing.config import load_scenario
    from slicing.experiments.transfer import GROUPS, heterogeneous, spearman
    from slicing.sim.simulator import cell_class_scale

    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 2], [5, 5]) is None and spearman([1], [2]) is None
    sc = heterogeneous(load_scenario("scenarios/idla.yaml", ["topology.sites=5"]))
    scale = cell_class_scale(sc, np.arange(15))  # [15, 4]
    col = sc.slice_index
    src1, target, src4 = scale[list(GROUPS["src_1"])], scale[list(GROUPS["target"])], scale[list(GROUPS["src_4"])]
    assert (src1[:, col[1]] > src1[:, col[4]]).all() and (src4[:, col[4]] > src4[:, col[1]]).all()  # two labels
    np.testing.assert_allclose(target, 0.9 * src1)  # the target resembles src_1
    with pytest.raises(ValueError, match=r"needs >= 15 cells"):
        heterogeneous(load_scenario("scenarios/idla.yaml"))


def test_tiny_experiment_json_is_consistent(ray_session, tmp_path):
    args = ["experiment", "transfer", "--iterations", "2", "--early", "1", "--pretrain-iterations", "1",
            "--sources", "2", "--strategies", "integrated", "--episode-len", "16", "--sample-episodes", "1",
            "--out", str(tmp_path), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) >= KEYS
    ranking = out["ranking"]
    assert [r["source"] for r in ranking] and {r["source"] for r in ranking} == {"src_1", "src_2"}
    dists = [r["distance"] for r in ranking]
    assert dists == sorted(dists) and all(d >= 0 for d in dists)
    nearest, farthest = ranking[0]["source"], ranking[-1]["source"]
    assert out["nearest"] == nearest and out["farthest"] == farthest
    early = out["early_reward"]
    assert out["gain_nearest"] == pytest.approx(early[f"integrated_{nearest}"] - early["scratch"])
    assert out["gain_farthest"] == pytest.approx(early[f"integrated_{farthest}"] - early["scratch"])
    assert out["strategies"] == {"integrated": pytest.approx(out["gain_nearest"])}
    gains = [out["source_gains"][r["source"]] for r in ranking]
    expected = None if gains[0] == gains[1] else (1.0 if gains[1] > gains[0] else -1.0)  # two points: +-1
    assert out["spearman_distance_gain"] == (None if expected is None else pytest.approx(expected))
    assert all(0 <= v <= 1 for v in early.values()) and 0 <= out["baseline_reward"] <= 1
    for plot in out["plots"].values():
        assert (tmp_path / plot.split("/")[-1]).stat().st_size > 5000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["curves"]["scratch"]) == 2 and summary["gain_nearest"] == out["gain_nearest"]
