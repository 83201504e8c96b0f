"""Flags and runners shared by every `slicing` subcommand (one place, not copied per command)."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from slicing.config import Scenario, ScenarioError, load_scenario
from slicing.errors import FieldError

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
    """Exceptions that mean bad input: reported in one line, exit code 2, no traceback.

    ``FieldError`` (slicing/errors.py) is the library's structured bad-input error; the others are file-format
    errors that name the file and the problem.
    """
    from slicing.data.parquet import DataFileError
    from slicing.errors import FieldError
    from slicing.models.qos_estimator import EstimatorFileError
    from slicing.models.twin import TwinFileError
    from slicing.models.vae import VaeFileError
    from slicing.optim.schemes import UnknownSchemeError
    from slicing.runtime.transfer_actor import TransferError
    from slicing.sim.traffic import TraceError
    from slicing.study import StudyError
    from slicing.sweeps.spec import SweepFileError

    return (ScenarioError, FieldError, DataFileError, EstimatorFileError, UnknownSchemeError, TraceError,
            SweepFileError, TransferError, VaeFileError, TwinFileError, StudyError)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as err:
            _err.print(f"[bold red]error:[/bold red] {err}")
            raise typer.Exit(code=2) from None

    return wrapper


# -- options generated from a settings model -------------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    """How one model field appears on the command line: its flag name, and a CLI-only lower bound or help text."""

    name: str
    min: float | None = None
    help: str | None = None


class ModelOptions:
    """The values of a command's generated options; ``build`` validates them (plus ``extra``) into the model and
    turns a validation error into the usual one-line error naming the flag (exit code 2)."""

    def __init__(self, model: type[BaseModel], flags: dict[str, Flag], values: dict[str, Any]) -> None:
        self.model, self.flags, self.values = model, flags, values

    def build(self, context: dict[str, Any] | None = None, **extra: Any) -> Any:
        try:
            return self.model.model_validate(self.values | extra, context=context)
        except ValidationError as err:
            raise typer.BadParameter(self.explain(err)) from None

    def explain(self, err: ValidationError) -> str:
        """``--flag 'value': rule`` for the first error (the field's own flag, else the field's name)."""
        first = err.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError) and cause.path:  # a cross-field rule of a model validator
            loc, message = cause.path, cause.message
        else:
            loc, message = tuple(first["loc"]), first["msg"].removeprefix("Value error, ")
        return self._named(loc, message)

    def bad_parameter(self, err: FieldError) -> typer.BadParameter:
        """A rule the settings break that only the command can check (e.g. against a scenario file), named by
        its flag like ``build``'s errors."""
        return typer.BadParameter(self._named(err.path, err.message))

    def _named(self, loc: tuple, message: str) -> str:
        field = str(loc[0]) if loc else ""
        if field not in self.flags:
            return f"{field}: {message}" if field else message
        value = self.values.get(field)
        shown = ",".join(value) if isinstance(value, tuple) else value
        return f"{self.flags[field].name} {shown!r}: {message}"


def _option_type(annotation: Any) -> tuple[Any, bool]:
    """(the typer type of a field, whether it is a comma-separated list): Literal -> str, tuple[str, ...] -> str."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    base = args[0] if optional and len(args) == 1 else annotation
    if typing.get_origin(base) is typing.Literal:
        base = str
    if typing.get_origin(base) is tuple:
        return str, True
    return (base | None if optional else base), False


def options_from(model: type[BaseModel], flags: dict[str, str | Flag]) -> Callable[[Callable[..., Any]], Any]:
    """Decorator of a typer command: one option per ``flags`` entry (model field -> flag name, or ``Flag``), with
    the field's default, its description as help and its ``ge``/``le`` bounds as the option's range. The command
    takes the values as its ``options: ModelOptions`` parameter. Booleans become ``--x/--no-x``; tuples of
    strings a comma-separated value. Defaults and validation live in the model alone."""
    specs = {f: (v if isinstance(v, Flag) else Flag(v)) for f, v in flags.items()}

    def decorate(fn: Callable[..., Any]) -> Any:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != "options"]
        generated, lists = [], set()
        for field, spec in specs.items():
            info = model.model_fields[field]
            kind, is_list = _option_type(info.annotation)
            bounds = {type(m).__name__: m for m in info.metadata}
            low = spec.min if spec.min is not None else getattr(bounds.get("Ge"), "ge", None)
            high = getattr(bounds.get("Le"), "le", None)
            names = [f"{spec.name}/--no-{spec.name[2:]}"] if kind is bool else [spec.name]
            option = typer.Option(*names, help=spec.help or info.description, min=low, max=high)
            default = ",".join(map(str, info.default)) if is_list else info.default
            if is_list:
                lists.add(field)
            generated.append(inspect.Parameter(f"opt_{field}", inspect.Parameter.KEYWORD_ONLY, default=default,
                                               annotation=Annotated[kind, option]))
        positional = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            values = {}
            for field in specs:
                value = kwargs.pop(f"opt_{field}")
                values[field] = tuple(v.strip() for v in value.split(",") if v.strip()) if field in lists else value
            return fn(**kwargs, options=ModelOptions(model, specs, values))

        # after --scenario/--set (where the hand-written options stood), before the command's other options
        at = max((i + 1 for i, p in enumerate(positional) if p.name in ("scenario", "overrides")), default=0)
        params = positional[:at] + generated + positional[at:]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
