"""A small what-if study end to end: Ray tasks, the outage's physics in the results, Parquet, the report, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from slicing.study import BASE, load_study

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "slicing")

STUDY = {
    "name": "tiny", "sites": 4, "periods": 8, "schemes": ["traffic", "idla"], "seeds": [0, 1], "shards": 2,
    "set": ["initial_slices=[1, 2, 4]"],
    "estimator": {"sites": 4, "periods": 40, "epochs": 3},
    "variants": [
        {"name": "double", "description": "twice the eMBB users everywhere",
         "events": [{"kind": "traffic", "slices": {1: 2.0}}]},
        {"name": "down", "description": "site 1 down in periods 2..5",
         "events": [{"kind": "outage", "region": {"sites": [1]}, "start": 2, "stop": 6}]},
    ],
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    p = tmp_path_factory.mktemp("study") / "tiny.yaml"
    p.write_text(yaml.safe_dump(STUDY))
    return load_study(p)


@pytest.fixture(scope="module")
def results(study, ray_session):
    from slicing.runtime.whatif import run_study

    seen: list[dict[str, int]] = []
    res = run_study(study, on_progress=seen.append, log=lambda _: None)
    return res, seen


def test_every_run_comes_back_in_order(study, results) -> None:
    res, seen = results
    assert [(r.variant, r.scheme, r.seed) for r in res] == [
        (v, s, d) for v in (BASE, "double", "down") for s in ("traffic", "idla") for d in (0, 1)]
    assert all(len(r.series["p_satisfied"]) == 8 for r in res)
    assert seen and max(sum(p.values()) for p in seen) <= 3 * 2 * 2 * 8


def test_the_outage_takes_its_cells_off_the_air(results) -> None:
    res, _ = results
    for r in res:
        down = r.variant == "down"
        live = r.cells["live"]  # periods live per cell
        np.testing.assert_array_equal(live[3:6], 8 - 4 * down)  # site 1 = cells 3, 4, 5
        assert np.all(np.delete(live, [3, 4, 5]) == 8)
        assert r.detail is not None
        off = np.isin(r.detail["cell_id"], [3, 4, 5]) & (r.detail["period"] >= 2) & (r.detail["period"] < 6)
        assert off.any() != down  # no KPI row of a down cell


def test_more_traffic_on_the_same_resources_satisfies_less(results) -> None:
    res, _ = results
    by = {(r.variant, r.scheme, r.seed): r.metrics for r in res}
    for scheme in ("traffic", "idla"):
        for seed in (0, 1):
            assert by[("double", scheme, seed)]["p_satisfied"] < by[(BASE, scheme, seed)]["p_satisfied"]
            assert by[("double", scheme, seed)]["prb_util"] > by[(BASE, scheme, seed)]["prb_util"]


def test_summary_pairs_seeds_and_the_base_has_no_delta(study, results) -> None:
    from slicing.runtime.whatif import METRICS, summarise

    res, _ = results
    summary = summarise(study, res)["variants"]
    assert all(summary[BASE]["delta_vs_base"][m] == 0 for m in METRICS)
    d = summary["double"]["by_scheme"]["idla"]["delta_vs_base"]["p_satisfied"]
    assert d["min"] <= d["mean"] <= d["max"] < 0
    assert summary["double"]["p_satisfied"] == summary["double"]["by_scheme"]["traffic"]["p_satisfied"]["mean"]


def test_parquet_and_report(study, results, tmp_path: Path) -> None:
    from slicing.experiments.whatif_report import write_report
    from slicing.runtime.whatif import summarise, write_results

    res, _ = results
    paths = write_results(tmp_path, res)
    runs = pq.read_table(paths["runs"]).to_pandas()
    assert len(runs) == 12 and set(runs["variant"]) == {BASE, "double", "down"}
    series = pq.read_table(paths["series"])
    assert series.num_rows == 12 * 8
    cells = pq.read_table(paths["cells"])
    assert cells.num_rows == 12 * 12
    kpis = pq.read_table(paths["kpis"]).to_pandas()
    assert set(kpis.columns) >= {"variant", "scheme", "seed", "period", "cell_id", "slice_id", "share", "r"}
    assert kpis.groupby(["variant", "scheme", "seed"]).size().min() > 0
    report = write_report(tmp_path, study, res, summarise(study, res),
                          {"wall_s": 1.0, "cell_periods_per_s": 10.0, "paths": paths})
    text = report.read_text()
    for fig in ("deltas.png", "series.png", "map_double.png", "map_down.png"):
        assert f"]({fig})" in text and (tmp_path / fig).stat().st_size > 5000
    assert "| double |" in text and "| down |" in text


def test_the_command_line(study, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([CLI, "whatif", str(study.path), "--out", str(out),
                           "--set", "seeds=[0]", "--set", "schemes=[traffic]", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["study"] == "tiny" and last["cells"] == 12 and last["periods"] == 8
    assert set(last["variants"]) == {BASE, "double", "down"}
    for v in last["variants"].values():
        assert set(v) == {"p_satisfied", "mean_r", "utility", "prb_util", "cells_violating", "delta_vs_base"}
    assert last["variants"]["double"]["delta_vs_base"]["p_satisfied"] < 0
    assert last["cell_periods_per_s"] > 0 and Path(last["report"]).is_file()
    assert (out / "runs.parquet").is_file() and (out / "summary.json").is_file()


def test_a_bad_study_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = dict(STUDY, variants=[{"name": "x", "events": [{"kind": "outage", "region": {"sites": [9]},
                                                          "start": 0, "stop": 2}]}])
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([CLI, "whatif", str(p)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "variants.0.events.0.region" in proc.stderr and "9" in proc.stderr


def test_a_large_network_map_zooms_on_the_cells_that_changed(tmp_path: Path, monkeypatch) -> None:
    """Above 3000 cells a local change is a speck on the whole map: a second panel zooms on it."""
    from slicing.experiments.whatif_report import plot_map
    from slicing.runtime.whatif import RunResult

    body = dict(STUDY, sites=1100, periods=4, schemes=["traffic"], seeds=[0],
                variants=[{"name": "down", "events": [{"kind": "outage", "region": {"sites": [500]}, "start": 1,
                                                       "stop": 3}]}])
    p = tmp_path / "big.yaml"
    p.write_text(yaml.safe_dump(body))
    big = load_study(p)
    n = big.cells
    ids = np.arange(n)
    live = np.full(n, 4.0)

    def run(variant: str, p_sat: np.ndarray, live_periods: np.ndarray) -> RunResult:
        return RunResult(variant, "traffic", 0, {}, {}, {"cell_id": ids, "p_satisfied": p_sat, "mean_r": p_sat,
                                                         "violating": 1 - p_sat, "live": live_periods})

    p_var = np.full(n, 0.9)
    p_var[1497:1500] = 0.7  # the down site's neighbours lose
    down_live = live.copy()
    down_live[1500:1503] = 2.0
    results = [run(BASE, np.full(n, 0.9), live), run("down", p_var, down_live)]
    import matplotlib.pyplot as plt

    seen = []
    orig = plt.subplots

    def spy(*args, **kwargs):
        fig, axes = orig(*args, **kwargs)
        seen.append(axes.shape)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", spy)
    out = plot_map(tmp_path / "map.png", big, results, "down")
    assert seen == [(1, 2)] and out.stat().st_size > 20_000
