"""Flags and runners shared by every `slicing` subcommand (one place, not copied per command)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from slicing.config import Scenario, ScenarioError, load_scenario

console = Console(stderr=False, highlight=False)
_err = Console(stderr=True, highlight=False)

ScenarioOpt = Annotated[Path | None, typer.Option("--scenario", help="scenario YAML (default: built-in defaults)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a scenario key: dotted.key=value "
                                                                "(repeatable), e.g. --set seed=3")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object as the last line of stdout")]
OutOpt = typer.Option(None, "--out", help="folder for plots and summary.json")


DEFAULT_SCENARIO = Path("scenarios/idla.yaml")  # the paper's setting, when run from a clone


def load(path: Path | None, overrides: list[str] | None) -> Scenario:
    return load_scenario(path, list(overrides or []))


def load_or_default(path: Path | None, overrides: list[str] | None, defaults: list[str] | None = None) -> Scenario:
    """``--scenario`` when given; else ``scenarios/idla.yaml`` (the built-in defaults outside a clone) with the
    command's own ``defaults`` overrides, then the user's ``--set`` overrides on top."""
    if path is not None:
        return load(path, overrides)
    base = DEFAULT_SCENARIO if DEFAULT_SCENARIO.is_file() else None
    return load(base, [*(defaults or []), *(overrides or [])])


def emit_json(enabled: bool, payload: dict[str, Any]) -> None:
    if enabled:
        sys.stdout.flush()
        print(json.dumps(payload), flush=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=_err, transient=False)


def stage_progress(bar: Progress) -> Callable[[str, int, int], None]:
    """``progress(stage, done, total)`` for long experiments: one bar per stage, added when the stage starts."""
    tasks: dict[str, Any] = {}

    def show(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    return show


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input: reported in one line, exit code 2, no traceback."""
    from slicing.data.parquet import DataFileError
    from slicing.models.qos_estimator import EstimatorFileError
    from slicing.models.vae import VaeFileError
    from slicing.optim.schemes import UnknownSchemeError
    from slicing.runtime.transfer_actor import TransferError
    from slicing.sim.traffic import TraceError
    from slicing.sweeps.spec import SweepFileError

    return (ScenarioError, DataFileError, EstimatorFileError, UnknownSchemeError, TraceError, SweepFileError,
            TransferError, VaeFileError)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as err:
            _err.print(f"[bold red]error:[/bold red] {err}")
            raise typer.Exit(code=2) from None

    return wrapper
