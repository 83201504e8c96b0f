"""`slicing reproduce`: the claims' arithmetic, the report (every figure inside the HTML), and the whole command at
the tiny budget in its own process (every paper's experiment for real, seconds each)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slicing.experiments.reproduce import PAPERS, Claim, Figure, Paper, PaperResult, judge, reproduce, spread
from slicing.experiments.reproduce_report import write_report

ROOT = Path(__file__).resolve().parents[2]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5Er"
                       "kJggg==")  # a 1x1 PNG


def test_spread_is_mean_and_sample_std_of_the_defined_values():
    s = spread([1.0, 2.0, 3.0, None])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3, "undefined": 1}
    assert spread([None, None])["mean"] is None
    assert spread([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1, "undefined": 0}


def test_a_claim_holds_on_the_mean_and_counts_the_seeds_that_hold_it():
    claim = Claim("x falls", "-0.3", "Fig. 1", lambda r: r["x"], lambda v: v < 0)
    row = judge(claim, [{"x": -0.3}, {"x": 0.1}, {"x": -0.1}])
    assert row["holds"] is True and row["seeds_holding"] == 2 and row["seeds"] == 3
    assert row["ours_mean"] == pytest.approx(-0.1) and row["ours"].startswith("-0.1 ± 0.2")
    assert judge(claim, [{"x": 0.2}, {"x": 0.4}])["holds"] is False
    never = judge(Claim("t", "1", "", lambda r: None, lambda v: True), [{}, {}])
    assert never["holds"] is False and never["ours"] == "not reached"


def test_every_paper_has_claims_figures_and_settings_for_each_budget():
    assert list(PAPERS) == ["idla", "tl", "safety", "imitation", "microopt", "twin"]
    for paper in PAPERS.values():
        assert paper.claims and paper.figures and paper.title
        for budget in ("tiny", "quick", "full"):
            assert paper.settings(budget)


def test_bad_arguments_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="paper: unknown"):
        reproduce(["nope"], [0], "tiny", tmp_path)
    with pytest.raises(ValueError, match="budget"):
        reproduce(["idla"], [0], "huge", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seeds"):
        reproduce(["idla"], [1, 1], "tiny", tmp_path)


def test_the_report_holds_every_figure_and_every_claim(tmp_path):
    figs = []
    for name in ("a", "b"):
        (tmp_path / "runs").mkdir(exist_ok=True)
        figs.append(tmp_path / "runs" / f"{name}.png")
        figs[-1].write_bytes(PNG)
    paper = Paper("demo", "A demo paper", run=lambda *a: {}, settings=lambda b: {"steps": 10},
                  claims=(Claim("it rises", "> 0", "Fig. 2", lambda r: r["v"], lambda v: v > 0),),
                  figures=(Figure("a", "Fig. 2: rises"), Figure("b", "Fig. 3: falls")), note="a note")
    rows = [judge(paper.claims[0], [{"v": 1.0}, {"v": 2.0}, {"v": -1.0}])]
    result = PaperResult("demo", rows, [{"path": str(f), "mirrors": m.mirrors} for f, m in zip(figs, paper.figures,
                                                                                                strict=True)],
                         {"steps": 10}, [0, 1, 2], 1.5)
    out = tmp_path / "report"
    out.mkdir()
    paths = write_report({"demo": result}, {"demo": paper}, "quick", out, 2.0)
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 3  # the overview and both figures, inside the page
    assert "Fig. 3: falls" in page and "it rises" in page and "yes (2/3 seeds)" in page
    md = paths["markdown"].read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file(), link
    assert json.loads((out / "summary.json").read_text())["demo"]["claims"][0]["holds"] is True


def test_reproduce_all_at_the_tiny_budget_writes_one_report_with_every_figure(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    cli = str(Path(sys.executable).parent / "slicing")
    proc = subprocess.run([cli, "reproduce", "all", "--budget", "tiny", "--seeds", "0", "--out", str(tmp_path),
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(res["papers"]) == set(PAPERS)
    page = Path(res["report"]).read_text()
    for name, paper in res["papers"].items():
        assert len(paper["claims"]) == sum("tiny" in c.budgets for c in PAPERS[name].claims)
        assert all({"claim", "paper", "ours", "holds"} <= set(c) for c in paper["claims"])
        assert len(paper["figures"]) == len(PAPERS[name].figures), name  # every figure the paper promises
        for fig in paper["figures"]:
            assert Path(fig["path"]).is_file()
            encoded = base64.b64encode(Path(fig["path"]).read_bytes()).decode()
            assert encoded in page, f"{name}: {fig['path']} is not in the HTML"
    assert Path(res["markdown"]).is_file() and res["budget"] == "tiny"


@pytest.mark.parametrize("args, message", [(["nope"], "PAPER 'nope'"), (["idla", "--seeds", "1,1"], "--seeds"),
                                           (["idla", "--quick", "--budget", "tiny"], "give one of them"),
                                           (["idla", "--budget", "huge"], "--budget 'huge'")])
def test_the_command_refuses_bad_arguments_with_exit_2(args, message, tmp_path):
    from typer.testing import CliRunner

    from slicing.cli import app

    res = CliRunner().invoke(app, ["reproduce", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2 and message in " ".join(res.output.split())
    assert not any(tmp_path.iterdir())  # nothing ran


def test_resume_reuses_matching_stored_runs_and_reruns_the_rest(tmp_path):
    """`--resume`: a stored run with the same paper, seed, budget and settings is read back, not run again; a
    changed setting, a missing done.json (an interrupted run) or another budget runs again."""
    calls: list[int] = []
    knob = {"steps": 10}

    def run(seed, budget, out, base, progress):
        calls.append(seed)
        return {"v": float(seed + 1), "figures": {}}

    paper = Paper("demo", "A demo paper", run=run, settings=lambda b: dict(knob),
                  claims=(Claim("it rises", "> 0", "Fig. 2", lambda r: r["v"], lambda v: v > 0),), figures=())
    from slicing.experiments.reproduce import run_paper

    first = run_paper(paper, [0, 1], "quick", tmp_path, log=lambda m: None)
    assert calls == [0, 1] and (tmp_path / "demo" / "seed1" / "done.json").is_file()
    again = run_paper(paper, [0, 1, 2], "quick", tmp_path, log=lambda m: None, resume=True)
    assert calls == [0, 1, 2]  # seeds 0 and 1 read back, only seed 2 ran
    assert [r["v"] for r in again.runs] == [1.0, 2.0, 3.0] and again.wall_s >= first.wall_s
    (tmp_path / "demo" / "seed0" / "done.json").unlink()  # as if seed 0 had been interrupted
    run_paper(paper, [0, 1], "quick", tmp_path, log=lambda m: None, resume=True)
    assert calls == [0, 1, 2, 0]
    knob["steps"] = 20  # other settings: nothing stored matches
    run_paper(paper, [1], "quick", tmp_path, log=lambda m: None, resume=True)
    run_paper(paper, [1], "full", tmp_path, log=lambda m: None, resume=True)
    assert calls == [0, 1, 2, 0, 1, 1]
    run_paper(paper, [1], "full", tmp_path, log=lambda m: None)  # without --resume everything runs
    assert calls == [0, 1, 2, 0, 1, 1, 1]


def test_windows_are_the_last_tenth_of_h1_and_the_first_tenth_of_h2():
    """The DRL claims read H1's last tenth and H2's first tenth: r is 1 in those windows only, so their
    P(r = 1) is 1 and the periods next to them do not leak in."""
    from types import SimpleNamespace

    import numpy as np

    from slicing.experiments.idla import Trace
    from slicing.experiments.reproduce import _windows

    tr = Trace()
    for t in range(200):  # trace of periods 100..299: H1 = 100..199 (trace 0..99), H2 = 200..299 (100..199)
        r = np.full((2, 3), 1.0 if 90 <= t < 110 else 0.5)
        rep = SimpleNamespace(r=r, mask=np.ones((2, 3), bool), throughput_mbps=np.ones((2, 3)),
                              share=np.ones((2, 3)) / 3)
        tr.add(rep, np.ones(3))
    res = SimpleNamespace(h0_end=100, h1_end=200, scenario=SimpleNamespace(steps=300), traces={"x": tr})
    w = _windows(res)["x"]
    assert w["H1_last"]["p_satisfied"] == 1.0 and w["H2_first"]["p_satisfied"] == 1.0
    tr.r[89] = tr.r[110] = np.zeros((2, 3))  # just outside both windows: no change
    assert _windows(res)["x"] == w


def test_drl_claims_count_only_at_the_full_budget(tmp_path):
    """The drl claims need the drl scheme, which only the full budget runs; at other budgets they are left out,
    at full they read the windows and the H2 utilities."""
    from slicing.experiments.reproduce import IDLA, _idla_schemes, run_paper

    run = {"estimator": {"mae": 0.01},
           "schemes": {s: {p: {"p_satisfied": 0.9, "mean_utility": u} for p in ("H1", "H2")}
                       for s, u in (("idla", 2.6), ("traffic", 2.5), ("equal", 2.5), ("oracle", 2.62), ("drl", 2.4))},
           "windows": {"idla": {"H1_last": {"mean_utility": 2.0}, "H2_first": {"mean_utility": 2.5}},
                       "oracle": {"H1_last": {"mean_utility": 2.0}, "H2_first": {"mean_utility": 2.6}},
                       "drl": {"H1_last": {"mean_utility": 1.99}, "H2_first": {"mean_utility": 2.2}}},
           "figures": {}}
    paper = Paper("idla", IDLA.title, run=lambda *a: run, settings=IDLA.settings, claims=IDLA.claims, figures=())
    quick = run_paper(paper, [0], "quick", tmp_path / "q", log=lambda m: None)
    full = run_paper(paper, [0], "full", tmp_path / "f", log=lambda m: None)
    assert "drl" not in _idla_schemes("quick") and "drl" in _idla_schemes("full")
    assert not any("DRL" in c["claim"] for c in quick.claims)
    drl = {c["claim"].split(":")[0]: c for c in full.claims if "DRL" in c["claim"]}
    assert len(drl) == 3 and all(c["holds"] for c in drl.values())
    assert [c["ours_mean"] for c in drl.values()] == [0.995, 0.3, 0.2]
