"""The tables and summary lines of the commands (slicing/cli/tables.py) render the numbers they are given."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from slicing.cli import tables
from slicing.rl.settings import SafetySettings

RUNS = ("without_switching", "with_switching")


@pytest.fixture
def out(monkeypatch) -> Console:
    """The commands' console, recording and wide enough that no number is wrapped."""
    console = Console(record=True, width=250, highlight=False)
    monkeypatch.setattr(tables, "console", console)
    return console


def _words(text: str) -> str:
    """The text with the table's column rules removed and whitespace collapsed: a row reads as its values."""
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def _text(console: Console) -> str:
    return _words(console.export_text())


def _metrics(r: float) -> dict:
    return {"mean_satisfaction": r, "p_satisfied": r / 2, "mean_utility": 2 * r, "max_share_sum": 1.0}


def test_comparison_table_rows_per_phase_and_scheme_with_the_best_in_bold():
    summary = {"scenario": "idla", "cells": 12, "steps": 150, "estimator": {"mae": 0.0512, "samples": 900},
               "schemes": {"idla": {"H1": _metrics(0.9), "H2": _metrics(0.6)},
                           "equal": {"H1": _metrics(0.5), "H2": _metrics(0.8)}}}
    table = tables.comparison_table(summary)
    assert table.title == "idla: 12 cells, 150 periods, estimator MAE 0.0512 (held out)"
    assert [c.header for c in table.columns] == ["phase", "scheme", "mean r", "P(r>=0.999)", "utility", "max sum x"]
    cells = [list(c._cells) for c in table.columns]
    rows = list(zip(*cells, strict=True))
    assert rows == [
        ("H1", "idla", "[bold]0.9000[/bold]", "[bold]0.4500[/bold]", "[bold]1.8000[/bold]", "1.0000"),
        ("", "equal", "0.5000", "0.2500", "1.0000", "1.0000"),
        ("H2", "idla", "0.6000", "0.3000", "1.2000", "1.0000"),
        ("", "equal", "[bold]0.8000[/bold]", "[bold]0.4000[/bold]", "[bold]1.6000[/bold]", "1.0000"),
    ]


def test_print_safety_shows_both_runs_the_final_policies_and_the_predictor(out):
    s = SafetySettings(cells=3, iterations=10, warmup=2, threshold=0.7)
    per_run = {"violation_rate": {RUNS[0]: 0.1234, RUNS[1]: 0.0456}, "mean_reward": {RUNS[0]: 0.81, RUNS[1]: 0.83}}
    res = {"settings": {"cells": 3}, "eval_days": [5], **per_run, "switch_rate": 0.25,
           "lambda_final": {RUNS[0]: 1.5, RUNS[1]: 0.25},
           "final_policy": {**per_run, "switch_rate": 0.5,
                            "switching_run_unshielded": {"violation_rate": 0.2, "mean_reward": 0.7},
                            "baseline": {"violation_rate": 0.01, "mean_reward": 0.9}},
           "warmup": {"violation_rate": 0.333}, "plot": "out/safety.png",
           "predictor": {"refits": 4, "samples": 1152, "accuracy": 0.91, "majority_accuracy": 0.8, "auc": 0.95}}
    tables.print_safety(res, s)
    text = _text(out)
    assert "safe DRL, 3 cells, threshold 0.7: online learning (iterations 3-10)" in text
    assert "online, without switching 0.1234 0.8100 - 1.500" in text
    assert "online, with switching 0.0456 0.8300 0.2500 0.250" in text
    assert "final policy, with switching 0.0456 0.8300 0.5000" in text
    assert "traffic-proportional baseline 0.0100 0.9000 1" in text
    assert "violation rate 0.333; predictor refit 4 times, last on 1152 transitions" in text
    assert "accuracy 0.910 (majority class 0.800), AUC 0.950; plot out/safety.png" in text


def test_print_imitation_marks_the_early_iterations_and_missing_values(out):
    res = {"algo": "ppo", "baseline_reward": 0.8, "curves": {"bc_warm_start": [0.7, None], "scratch": [0.4, 0.5]},
           "early_iterations": 1, "early_reward": {"bc_warm_start": 0.7, "scratch": None}, "bc_loss_first": 3.0,
           "bc_loss": -1.25, "rows": 96, "clone_reward": 0.78, "clone_share_gap": 0.05, "plot": "p.png"}
    tables.print_imitation(res)
    text = _text(out)
    assert "PPO: mean reward per agent-period (baseline 0.8000)" in text
    assert "1 * 0.7000 0.4000" in text and "2 - 0.5000" in text
    assert "BC loss 3.000 -> -1.250 (96 recorded transitions)" in text and "share gap to the baseline 0.0500" in text
    assert "warm start 0.7000 vs scratch -; plot p.png" in text


def test_print_transfer_ranks_the_sources_with_their_gains(out):
    res = {"early_iterations": 2, "iterations": 8, "ranking": [{"source": "src_2", "distance": 0.125},
                                                               {"source": "src_1", "distance": 1.5}],
           "source_gains": {"src_2": 0.05, "src_1": None},
           "iterations_to_95pct_scratch_final": {"integrated_src_2": 3, "integrated_src_1": None, "scratch": 6},
           "strategies": {"integrated": 0.05, "model": -0.01}, "early_reward": {"scratch": 0.5},
           "final_reward": {"scratch": 0.75}, "baseline_reward": 0.6, "spearman_distance_gain": -1.0,
           "plots": {"curves": "c.png", "distance_gain": "d.png"}}
    tables.print_transfer(res)
    text = _text(out)
    assert "(early = first 2 of 8 iterations)" in text
    assert "src_2 0.1250 +0.0500 3" in text and "src_1 1.5000 - -" in text
    assert "strategies from the nearest source (gain over scratch): integrated +0.0500, model -0.0100" in text
    assert "scratch early 0.5000, final 0.7500 (95% of it reached at iteration 6); traffic baseline 0.6000" in text
    assert "Spearman(distance, gain) -1.0; plots c.png, d.png" in text


def test_print_sweep_lists_the_trials_best_first(capsys):
    sweep = SimpleNamespace(name="est", search_space={"lr": None, "batch": None})
    trials = [SimpleNamespace(trial_id="t1", status="TERMINATED", config={"lr": 0.0012345, "batch": 64}, metric=0.05,
                              extras={"mae": 0.25}, reports=3),
              SimpleNamespace(trial_id="t2", status="ERROR", config={"lr": 0.1, "batch": 32}, metric=None, extras={},
                              reports=0)]
    tables.print_sweep(sweep, SimpleNamespace(trials=trials, metric="val_loss", mode="min"), ("mae",))
    text = _words(capsys.readouterr().out)
    assert "est: 2 trials, val_loss (min), best first" in text
    assert "t1 TERMINATED 0.001234 64 0.05000 0.25 3" in text and "t2 ERROR 0.1 32 - - 0" in text
